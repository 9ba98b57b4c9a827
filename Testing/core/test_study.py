"""load_study / study_from_*: masks land on the image grid, bad masks are refused by name."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.errors import InputError
from u2adcore.io.study import load_study, study_from_arrays, study_from_images

T2 = "sct_testing_data/t2/t2.nii.gz"  # 60 x 55 x 52, PSR
CORD = "sct_testing_data/t2/t2_seg-manual.nii.gz"
LABELED = "sct_testing_data/t2/t2_seg-manual_labeled.nii.gz"  # cord voxels hold levels 2..5


def write(image: sitk.Image, path) -> str:
    sitk.WriteImage(image, str(path))
    return str(path)


def synthetic(shape=(6, 20, 10)) -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(0).uniform(1, 100, shape).astype(np.float32)
    cord = np.zeros(shape, np.uint8)
    cord[2:4, 3:17, 4:6] = 1
    return image, cord


@pytest.mark.realdata
def test_load_real_study(errsm):
    name, files = next(iter(errsm.items()))
    study = load_study(files["image"], files["cord"])
    assert study.id == "t2"
    assert study.image.GetPixelID() == sitk.sitkFloat32
    assert study.cord.GetPixelID() == sitk.sitkUInt8
    for attr in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(study.cord, attr)() == getattr(study.image, attr)()
    original = sitk.GetArrayFromImage(sitk.ReadImage(str(files["cord"])))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(study.cord), original.astype(np.uint8))
    assert study.image_path == files["image"] and study.cord_path == files["cord"] and study.levels is None


@pytest.mark.realdata
def test_levels_are_read_through_the_levels_module(errsm):
    files = next(iter(errsm.values()))
    study = load_study(files["image"], files["cord"], levels=files["landmarks"], levels_kind="bodies", study_id="s1")
    assert study.id == "s1" and study.levels_path == files["landmarks"]
    assert {"C2", "T2"} <= set(study.levels.bodies)
    assert study.levels.bodies["C2"][2] > study.levels.bodies["T2"][2]  # C2 superior: larger LPS z


@pytest.mark.realdata
def test_mask_on_its_own_grid_is_resampled_onto_the_image(realspine, tmp_path):
    """A cord mask cropped to a smaller grid (different size and origin) is the same cord in space."""
    full = sitk.ReadImage(str(realspine / CORD))
    cropped = sitk.RegionOfInterest(full, (40, 30, 40), (10, 12, 6))
    assert cropped.GetOrigin() != full.GetOrigin()
    study = load_study(realspine / T2, write(cropped, tmp_path / "crop.nii.gz"))
    expected = np.zeros_like(sitk.GetArrayFromImage(full))
    expected[6:46, 12:42, 10:50] = sitk.GetArrayFromImage(full)[6:46, 12:42, 10:50]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(study.cord), expected)


@pytest.mark.realdata
def test_mask_outside_the_image_is_refused(realspine, tmp_path):
    cord = sitk.ReadImage(str(realspine / CORD))
    cord.SetOrigin(tuple(np.asarray(cord.GetOrigin()) + (0.0, 0.0, 500.0)))
    path = write(cord, tmp_path / "elsewhere.nii.gz")
    with pytest.raises(InputError, match=r"elsewhere\.nii\.gz: the cord mask does not overlap the image in physical space"):
        load_study(realspine / T2, path)


@pytest.mark.realdata
def test_multilabel_mask_needs_a_label(realspine):
    with pytest.raises(InputError, match=r"t2_seg-manual_labeled\.nii\.gz: the cord mask has values other than 0/1 \(2, 3, 4, 5\)"):
        load_study(realspine / T2, realspine / LABELED)
    study = load_study(realspine / T2, realspine / LABELED, cord_label=3)
    labeled = sitk.GetArrayFromImage(sitk.ReadImage(str(realspine / LABELED)))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(study.cord), (labeled == 3).astype(np.uint8))


@pytest.mark.realdata
def test_label_absent_from_mask_is_an_empty_cord(realspine):
    with pytest.raises(InputError, match=r"the cord mask is empty \(no voxel has label 7\)"):
        load_study(realspine / T2, realspine / LABELED, cord_label=7)


def test_empty_cord_mask(tmp_path):
    image, cord = synthetic()
    img = write(sitk.GetImageFromArray(image), tmp_path / "img.nii.gz")
    empty = write(sitk.GetImageFromArray(np.zeros_like(cord)), tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match=r"empty\.nii\.gz: the cord mask is empty"):
        load_study(img, empty)


def test_missing_cord_file(tmp_path):
    image, _ = synthetic()
    img = write(sitk.GetImageFromArray(image), tmp_path / "img.nii.gz")
    with pytest.raises(InputError, match=r"nocord\.nii\.gz: cord mask file not found"):
        load_study(img, tmp_path / "nocord.nii.gz")


def test_2d_cord_mask_is_refused(tmp_path):
    image, _ = synthetic()
    img = write(sitk.GetImageFromArray(image), tmp_path / "img.nii.gz")
    flat = write(sitk.Image(10, 20, sitk.sitkUInt8), tmp_path / "flat.nii.gz")
    with pytest.raises(InputError, match=r"flat\.nii\.gz: the cord mask is 2D"):
        load_study(img, flat)


def test_lesion_mask_is_loaded_on_the_image_grid(tmp_path):
    image, cord = synthetic()
    lesion = np.zeros_like(cord)
    lesion[3, 8:10, 4:6] = 1
    paths = [write(sitk.GetImageFromArray(a), tmp_path / f"{n}.nii.gz") for n, a in (("img", image), ("cord", cord), ("les", lesion))]
    study = load_study(paths[0], paths[1], lesion=paths[2])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(study.lesion), lesion)
    assert study.lesion.GetPixelID() == sitk.sitkUInt8


def test_study_from_arrays_keeps_geometry():
    image, cord = synthetic()
    direction = (0, 0, -1, 1, 0, 0, 0, 1, 0)  # PSR, like the real files
    study = study_from_arrays(image, cord, spacing=(0.9, 0.9, 1.5), origin=(5, 6, 7), direction=direction, study_id="gen")
    assert study.id == "gen" and study.image.GetSpacing() == (0.9, 0.9, 1.5)
    assert study.cord.GetDirection() == tuple(float(d) for d in direction) and study.cord.GetOrigin() == (5, 6, 7)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(study.image), image)


def test_study_from_images_checks_masks():
    image, cord = synthetic()
    bad = cord.copy()
    bad[0, 0, 0] = 2
    with pytest.raises(InputError, match="values other than 0/1"):
        study_from_images(sitk.GetImageFromArray(image), sitk.GetImageFromArray(bad))
    with pytest.raises(InputError, match="empty"):
        study_from_images(sitk.GetImageFromArray(image), sitk.GetImageFromArray(np.zeros_like(cord)))
    nan_image = image.copy()
    nan_image[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="1 NaN or infinite voxel"):
        study_from_images(sitk.GetImageFromArray(nan_image), sitk.GetImageFromArray(cord))


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda a: np.full_like(a, 250.0), r"constant \(every voxel is 250\)"),
        (lambda a: np.zeros_like(a), r"constant \(every voxel is 0\)"),
        (lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, 251.0, 250.0).astype(a.dtype), "near-constant"),
        (lambda a: (1000.0 + a * 1e-4).astype(np.float32), r"near-constant \(foreground spans only"),
    ],
    ids=["constant", "zero", "one-voxel", "tiny-spread"],
)
def test_constant_or_near_constant_images_are_refused(tmp_path, make, reason):
    image, cord = synthetic()
    img = write(sitk.GetImageFromArray(make(image)), tmp_path / "blank.nii.gz")
    cord_path = write(sitk.GetImageFromArray(cord), tmp_path / "cord.nii.gz")
    with pytest.raises(InputError, match=r"blank\.nii\.gz: the image cannot be analysed: it is " + reason):
        load_study(img, cord_path)
    with pytest.raises(InputError, match="the image cannot be analysed"):
        study_from_images(sitk.GetImageFromArray(make(image)), sitk.GetImageFromArray(cord))
