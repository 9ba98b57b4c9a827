"""The canonical frame comes from the header: checked on PSR, RAS, LAS and oblique real files."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.errors import InputError
from u2adcore.volume.orientation import check_not_sheared, from_canonical, orientation_code, to_canonical

# Canonical PIL: voxel x toward Posterior (+y LPS), y toward Inferior (-z LPS), z toward Left (+x LPS).
PIL = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float)

FILES = {
    "PSR": "sct_testing_data/t2/t2.nii.gz",
    "RAS": "sct_testing_data/t1/t1w.nii.gz",
    "LAS": "sct_testing_data/template/template/PAM50_small_t2.nii.gz",
}
CORDS = {
    "PSR": "sct_testing_data/t2/t2_seg-manual.nii.gz",
    "RAS": "sct_testing_data/t1/t1w_seg-manual.nii.gz",
    "LAS": "sct_testing_data/template/template/PAM50_small_cord.nii.gz",
}


def rotation(axis: int, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def rotated(image: sitk.Image, axis: int, degrees: float) -> sitk.Image:
    """The same voxels with the direction matrix turned about a physical axis (an oblique scan)."""
    out = sitk.Image(image)
    d = rotation(axis, degrees) @ np.asarray(image.GetDirection()).reshape(3, 3)
    out.SetDirection(tuple(d.ravel()))
    return out


def assert_same_voxels_in_space(a: sitk.Image, b: sitk.Image, n: int = 50) -> None:
    """Every sampled voxel of `a` sits at a physical point where `b` has the same value."""
    arr_a, arr_b = sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)
    rng = np.random.default_rng(0)
    for kji in rng.integers(0, arr_a.shape, size=(n, 3)):
        point = a.TransformIndexToPhysicalPoint(tuple(int(v) for v in kji[::-1]))
        idx = np.round(b.TransformPhysicalPointToContinuousIndex(point)).astype(int)
        assert arr_b[tuple(idx[::-1])] == arr_a[tuple(kji)]


@pytest.mark.realdata
@pytest.mark.parametrize("code", sorted(FILES))
def test_real_files_reach_canonical_frame_and_back(realspine, code):
    image = sitk.ReadImage(str(realspine / FILES[code]))
    assert orientation_code(image) == code
    canonical = to_canonical(image)
    np.testing.assert_allclose(np.asarray(canonical.GetDirection()).reshape(3, 3), PIL, atol=1e-6)
    assert sorted(canonical.GetSize()) == sorted(image.GetSize())
    assert_same_voxels_in_space(image, canonical)
    back = from_canonical(canonical, image)
    assert back.GetSize() == image.GetSize()
    assert back.GetOrigin() == image.GetOrigin() and back.GetDirection() == image.GetDirection()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


@pytest.mark.realdata
@pytest.mark.parametrize("code", sorted(CORDS))
def test_cord_runs_along_rows_in_canonical_frame(realspine, code):
    """Rows are S-I: in the sagittal slice with the most cord, the cord is far longer in rows
    (S-I) than in columns (A-P), whatever the file's voxel order."""
    canonical = to_canonical(sitk.ReadImage(str(realspine / CORDS[code])))
    cord = sitk.GetArrayFromImage(canonical) > 0
    rows, cols = np.nonzero(cord[np.argmax(cord.sum(axis=(1, 2)))])
    spacing = canonical.GetSpacing()
    si_mm = (rows.max() - rows.min()) * spacing[1]
    ap_mm = (cols.max() - cols.min()) * spacing[0]
    assert si_mm > 3 * ap_mm


@pytest.mark.realdata
def test_c2_lies_above_t2_in_rows(errsm):
    """Landmark C2 (value 2) must get a smaller row than T2 (value 9): rows run superior→inferior."""
    for files in errsm.values():
        lm = sitk.GetArrayFromImage(to_canonical(sitk.ReadImage(str(files["landmarks"]))))
        row_c2 = np.argwhere(lm == 2)[0][1]
        row_t2 = np.argwhere(lm == 9)[0][1]
        assert row_c2 < row_t2 - 90  # C2 to T2 is 112-128 mm at 1 mm


@pytest.mark.realdata
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_oblique_direction_keeps_permutation_and_round_trips(realspine, axis):
    image = rotated(sitk.ReadImage(str(realspine / FILES["PSR"])), axis, 10.0)
    check_not_sheared(image)
    canonical = to_canonical(image)
    d = np.asarray(canonical.GetDirection()).reshape(3, 3)
    # Still a rotation, and each canonical axis within 10° of its PIL direction.
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-6)
    assert np.all(np.sum(d * PIL, axis=0) > np.cos(np.deg2rad(10.5)))
    assert_same_voxels_in_space(image, canonical)
    back = from_canonical(canonical, image)
    assert back.GetOrigin() == image.GetOrigin() and back.GetDirection() == image.GetDirection()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_sheared_direction_is_refused():
    image = sitk.Image(4, 5, 6, sitk.sitkFloat32)
    image.SetDirection((1.0, 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    with pytest.raises(InputError, match="sheared"):
        to_canonical(image)
    with pytest.raises(InputError, match=r"^scan\.nii: sheared"):
        check_not_sheared(image, "scan.nii")


def test_from_canonical_refuses_foreign_grid():
    reference = sitk.Image(4, 5, 6, sitk.sitkFloat32)
    other = to_canonical(sitk.Image(4, 5, 7, sitk.sitkFloat32))
    with pytest.raises(ValueError, match="not on the canonical grid"):
        from_canonical(other, reference)
