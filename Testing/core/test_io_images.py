"""read_image: every supported format gives the same volume; every bad input names file and problem."""
from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.errors import InputError
from u2adcore.io.images import read_image
from u2adcore.volume.orientation import to_canonical

SMALL_T2 = "sct_testing_data/t2/t2.nii.gz"  # 60 x 55 x 52, PSR, int16


def small_image() -> sitk.Image:
    img = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
    img.SetSpacing((0.5, 0.8, 1.2))
    img.SetOrigin((10.0, -3.0, 7.5))
    return img


def assert_same_image(a: sitk.Image, b: sitk.Image, atol_mm: float = 1e-4) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=atol_mm)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=atol_mm)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


def write_dicom_series(image: sitk.Image, folder: Path) -> None:
    """One DICOM file per slice along voxel axis 2, with the tags that carry the geometry."""
    folder.mkdir()
    image = sitk.Cast(image, sitk.sitkInt16)
    d = image.GetDirection()
    uid = "1.2.826.0.1.3680043.2.1125." + time.strftime("%H%M%S")
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        pos = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "MR",
            "0020|000d": uid + ".1",
            "0020|000e": uid + ".2",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in pos),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0018|0050": f"{image.GetSpacing()[2]:.6f}",
        }
        for key, value in tags.items():
            sl.SetMetaData(key, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def nifti_with_sform(tmp_path: Path, srow: np.ndarray, qform_code: int) -> Path:
    """A NIfTI-1 file whose sform is `srow` (3 x 4), written by patching the header bytes."""
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(small_image(), str(plain))
    raw = bytearray(plain.read_bytes())
    struct.pack_into("<h", raw, 252, qform_code)
    struct.pack_into("<h", raw, 254, 1)
    struct.pack_into("<12f", raw, 280, *np.asarray(srow, dtype=float).ravel())
    out = tmp_path / "sheared.nii.gz"
    out.write_bytes(gzip.compress(bytes(raw)))
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_formats_read_the_same_volume(realspine, tmp_path, suffix):
    original = sitk.ReadImage(str(realspine / SMALL_T2))
    path = tmp_path / f"t2{suffix}"
    sitk.WriteImage(original, str(path))
    assert_same_image(read_image(path), original)


@pytest.mark.realdata
def test_dicom_series_folder_reads_back_the_volume(realspine, tmp_path):
    original = sitk.ReadImage(str(realspine / SMALL_T2))
    write_dicom_series(original, tmp_path / "series")
    image = read_image(tmp_path / "series")
    # DICOM stacks slices along the right-handed normal, so a left-handed file (PSR) comes back
    # with its slice order reversed: the same voxels in space, compared in the canonical frame.
    assert_same_image(to_canonical(image), to_canonical(original), atol_mm=1e-3)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"missing\.nii\.gz: cord mask file not found"):
        read_image(tmp_path / "missing.nii.gz", what="cord mask")


def test_unreadable_file(tmp_path):
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("this is not an image\n")
    with pytest.raises(InputError, match=r"notes\.nii\.gz: cannot read the image"):
        read_image(bad)


def test_unsupported_suffix(tmp_path):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match=r"scan\.png: unsupported image format"):
        read_image(bad)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: folder holds no DICOM series"):
        read_image(tmp_path / "empty")


def test_2d_image(tmp_path):
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.Image(8, 9, sitk.sitkFloat32), str(path))
    with pytest.raises(InputError, match=r"slice\.nii\.gz: the image is 2D \(size \(8, 9\)\); a 3D volume is needed"):
        read_image(path)


def test_4d_image(tmp_path):
    path = tmp_path / "series4d.nii.gz"
    sitk.WriteImage(sitk.Image([4, 5, 6, 3], sitk.sitkFloat32), str(path))
    with pytest.raises(InputError, match=r"series4d\.nii\.gz: the image is 4D .*single 3D volume"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_voxels(tmp_path, suffix, dtype):
    """ITK's NIfTI reader turns NaN/inf into 0, so NIfTI needs its own check: test both paths."""
    arr = np.ones((4, 5, 6), dtype)
    arr[1, 2, 3] = np.nan
    arr[2, 2, 2] = -np.inf
    path = tmp_path / f"nan{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    with pytest.raises(InputError, match=rf"nan{suffix}: the image has 2 NaN or infinite voxel"):
        read_image(path)


def test_finite_float_nifti_is_read(tmp_path):
    arr = np.linspace(-5, 5, 120, dtype=np.float32).reshape(4, 5, 6)
    path = tmp_path / "fine.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(path)), arr)


SHEARED_SROW = np.array([[-0.5, 0.3, 0.0, 0.0], [0.0, -0.8, 0.0, 0.0], [0.0, 0.0, 1.2, 0.0]])


@pytest.mark.parametrize("qform_code", [0, 1])
def test_sheared_sform_is_refused(tmp_path, qform_code):
    """With no qform ITK itself refuses; with one, ITK would silently use it: both are our error."""
    path = nifti_with_sform(tmp_path, SHEARED_SROW, qform_code)
    with pytest.raises(InputError, match=r"sheared\.nii\.gz: sheared or non-orthonormal affine"):
        read_image(path)


def test_orthogonal_sform_with_scaling_is_read(tmp_path):
    """The header check must not flag the ordinary case: a rotation times the voxel sizes."""
    srow = np.array([[-0.5, 0.0, 0.0, 1.0], [0.0, -0.8, 0.0, 2.0], [0.0, 0.0, 1.2, 3.0]])
    image = read_image(nifti_with_sform(tmp_path, srow, qform_code=0))
    np.testing.assert_allclose(image.GetSpacing(), (0.5, 0.8, 1.2), atol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), (-1.0, -2.0, 3.0), atol=1e-6)  # RAS -> LPS
