"""Slice selection, per-slice preprocessing and its exact way back onto the study's 3D grid."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from u2adcore.config import PreprocessConfig
from u2adcore.errors import InputError
from u2adcore.io.study import load_study, study_from_arrays, study_from_images
from u2adcore.volume.orientation import to_canonical
from u2adcore.volume.preprocess import intensity_range, maps_to_volume, prepare_slices
from u2adcore.volume.slices import mid_sagittal_index, select_slices

LAS = ("sct_testing_data/template/template/PAM50_small_t2.nii.gz", "sct_testing_data/template/template/PAM50_small_cord.nii.gz")
RAS = ("sct_testing_data/t1/t1w.nii.gz", "sct_testing_data/t1/t1w_seg-manual.nii.gz")
PSR_SMALL = ("sct_testing_data/t2/t2.nii.gz", "sct_testing_data/t2/t2_seg-manual.nii.gz")
# Synthetic arrays below are written in the canonical layout (left-right, S-I, A-P).
PIL_DIRECTION = (0, 0, 1, 1, 0, 0, 0, -1, 0)


def cord_with_areas(areas: list[int]) -> np.ndarray:
    """A canonical mask array whose slice i holds areas[i] cord voxels."""
    arr = np.zeros((len(areas), 10, 10), np.uint8)
    for i, a in enumerate(areas):
        arr[i].flat[:a] = 1
    return arr


def round_trip(study, cfg: PreprocessConfig):
    """(prepared slices, canonical original, canonical reconstruction in original units, canonical
    mask of the voxels the grid covers)."""
    slices = prepare_slices(study, cfg)
    recon = maps_to_volume([s.transform.to_original_units(s.image) for s in slices], slices, study.image)
    covered = maps_to_volume([np.ones((cfg.size, cfg.size), np.float32)] * len(slices), slices, study.image, interpolation="nearest")
    canon = lambda img: sitk.GetArrayFromImage(to_canonical(img))  # noqa: E731
    return slices, canon(study.image), canon(recon), canon(covered) > 0


def assert_exact_round_trip(study, cfg: PreprocessConfig) -> None:
    """On the grid's field, forward then inverse gives back the clipped original.

    Tolerance: float32 rounding only (4 ulp of the clip range's magnitude). The grid sits on the
    source pixel lattice and the source spacings here are 1 or 2 mm, so every resampling samples
    at pixel centres, where linear interpolation returns the pixel values themselves.
    """
    slices, orig, recon, covered = round_trip(study, cfg)
    assert covered.any()
    for s in slices:
        t, i = s.transform, s.transform.slice_index
        tol = 4 * np.finfo(np.float32).eps * max(abs(t.intensity_lo), abs(t.intensity_hi))
        expected = np.clip(orig[i], t.intensity_lo, t.intensity_hi)
        np.testing.assert_allclose(recon[i][covered[i]], expected[covered[i]], rtol=0, atol=tol)


# -- slice selection -------------------------------------------------------------------------

def test_mid_sagittal_is_the_slice_with_most_cord():
    assert mid_sagittal_index(cord_with_areas([0, 5, 9, 30, 12, 0, 0, 0])) == 3
    # A tie goes to the slice nearest the cord's left-right centre of mass.
    assert mid_sagittal_index(cord_with_areas([20, 20, 0, 0, 0, 0, 20, 20, 20])) == 6


def test_n_slices_centred_and_explicit_list():
    cord = cord_with_areas([0, 5, 9, 30, 12, 0, 0, 0])
    assert select_slices(cord, 1) == [3]
    assert select_slices(cord, 3) == [2, 3, 4]
    assert select_slices(cord, 4) == [2, 3, 4, 5]
    assert select_slices(cord, 3, slices=[6, 1, 6]) == [1, 6]


def test_window_is_clamped_at_volume_ends_with_a_warning(caplog):
    cord = cord_with_areas([30, 5, 0, 0, 0, 0])
    with caplog.at_level(logging.WARNING):
        assert select_slices(cord, 3) == [0, 1, 2]
        assert select_slices(cord, 30) == list(range(6))
    assert "run past the volume's end" in caplog.text and "using all of them" in caplog.text


def test_out_of_range_slice_index_is_an_input_error():
    cord = cord_with_areas([0, 5, 9, 30, 12])
    with pytest.raises(InputError, match=r"slice indices \[5\] are outside the volume's 5 sagittal slices \(0\.\.4\)"):
        select_slices(cord, slices=[2, 5])
    with pytest.raises(InputError, match="at least 1"):
        select_slices(cord, 0)


# -- forward: geometry and intensities ---------------------------------------------------------

@pytest.mark.realdata
def test_prepared_slices_of_a_real_study(errsm):
    files = next(iter(errsm.values()))
    study = load_study(files["image"], files["cord"])
    slices = prepare_slices(study, PreprocessConfig(n_slices=3))
    cord = sitk.GetArrayFromImage(to_canonical(study.cord)) > 0
    mid = mid_sagittal_index(cord)
    assert [s.transform.slice_index for s in slices] == [mid - 1, mid, mid + 1]
    for s in slices:
        assert s.image.shape == (256, 256) and s.image.dtype == np.float32 and s.roi.dtype == bool
        assert s.image.min() == 0.0 and s.image.max() == 1.0
        assert s.study_id == study.id and s.lesion is None
        # 1 mm source on a 1 mm grid: the ROI is the slice's cord, pixel for pixel.
        assert s.roi.sum() == cord[s.transform.slice_index].sum()
    # One grid per study, centred on the cord's bounding box (rows S-I, columns A-P).
    rows, cols = np.nonzero(np.any([s.roi for s in slices], axis=0))
    assert abs((rows.min() + rows.max()) / 2 - 127.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 127.5) <= 1


def test_foreground_percentiles_ignore_zero_padding():
    """A wide blank margin must not pull the low clip to 0."""
    values = np.concatenate([np.zeros(10_000), np.linspace(100, 200, 1001)])
    lo, hi = intensity_range(values, (0.2, 99.8))
    assert lo == pytest.approx(100.2) and hi == pytest.approx(199.8)
    assert intensity_range(np.full(50, 7.0), (0.2, 99.8)) == (7.0, 8.0)


def test_a_constant_analysed_slice_is_refused_even_when_the_volume_has_contrast():
    image = np.random.default_rng(0).uniform(10, 20, (3, 40, 30)).astype(np.float32)
    image[1] = 5.0  # the analysed (cord) slice is blank
    cord = np.zeros(image.shape, np.uint8)
    cord[1, 5:35, 14:17] = 1
    with pytest.raises(InputError, match=r"sagittal slice 1 cannot be analysed: it is constant \(every voxel is 5\)"):
        prepare_slices(study_from_arrays(image, cord, direction=PIL_DIRECTION), PreprocessConfig(size=64))


def test_cord_longer_than_the_field_is_cut_with_a_warning(caplog):
    image = np.random.default_rng(0).uniform(1, 2, (3, 300, 20)).astype(np.float32)
    cord = np.zeros(image.shape, np.uint8)
    cord[1, 10:290, 9:12] = 1
    with caplog.at_level(logging.WARNING):
        (s,) = prepare_slices(study_from_arrays(image, cord, direction=PIL_DIRECTION, study_id="long"), PreprocessConfig())
    assert "long: the cord spans 279 mm S-I, more than the 256 mm field" in caplog.text
    assert s.roi.sum() == 256 * 3  # every grid row holds cord


def test_lesion_mask_follows_the_image():
    rng = np.random.default_rng(1)
    image = rng.uniform(10, 20, (5, 60, 40)).astype(np.float32)
    cord = np.zeros(image.shape, np.uint8)
    cord[1:4, 5:55, 18:23] = 1
    lesion = np.zeros_like(cord)
    lesion[2, 30:34, 19:22] = 1
    study = study_from_arrays(image, cord, spacing=(0.5, 0.5, 2.0), direction=PIL_DIRECTION, lesion=lesion)
    (s,) = prepare_slices(study, PreprocessConfig(size=64))
    # 0.5 mm source, 1 mm grid: the 4 x 3 voxel lesion becomes 2 x 2 (or 2 x 1) grid pixels inside the ROI.
    assert 2 <= s.lesion.sum() <= 4 and not (s.lesion & ~s.roi).any()


# -- back onto the 3D grid ----------------------------------------------------------------------

@pytest.mark.realdata
def test_round_trip_on_errsm_subjects(errsm):
    for files in errsm.values():
        assert_exact_round_trip(load_study(files["image"], files["cord"]), PreprocessConfig(n_slices=3))


@pytest.mark.realdata
@pytest.mark.parametrize("files", [LAS, RAS], ids=["LAS-2mm-rows", "RAS"])
def test_round_trip_on_las_and_ras_files(realspine, files):
    assert_exact_round_trip(load_study(realspine / files[0], realspine / files[1]), PreprocessConfig(n_slices=3))


@pytest.mark.realdata
def test_round_trip_of_an_oblique_study(realspine):
    """Direction turned 10° about the left-right axis: the in-plane maths is unchanged."""
    study = load_study(realspine / PSR_SMALL[0], realspine / PSR_SMALL[1])
    d = np.asarray(study.image.GetDirection()).reshape(3, 3)
    a = np.deg2rad(10.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    image, cord = sitk.Image(study.image), sitk.Image(study.cord)
    for img in (image, cord):
        img.SetDirection(tuple((rot @ d).ravel()))
    assert_exact_round_trip(study_from_images(image, cord), PreprocessConfig(n_slices=5))


@pytest.mark.realdata
def test_round_trip_off_the_lattice_stays_within_local_range(realspine):
    """0.7 mm source on a 1 mm grid: two linear interpolations. Each reconstructed value is a
    convex combination of clipped source values within 1 mm + 0.7 mm, i.e. within 3 source pixels,
    so it must lie between their min and max; and inside the cord it is close on average.
    The outermost source pixels are left out: the grid sample beyond them is padding (0)."""
    study = load_study(realspine / PSR_SMALL[0], realspine / PSR_SMALL[1])
    fine = []
    for img, interp in ((study.image, sitk.sitkLinear), (study.cord, sitk.sitkNearestNeighbor)):
        size = [int(round(n * s / t)) for n, s, t in zip(img.GetSize(), img.GetSpacing(), (0.7, 0.7, 1.0))]
        fine.append(sitk.Resample(img, size, sitk.Transform(), interp, img.GetOrigin(), (0.7, 0.7, 1.0), img.GetDirection()))
    study = study_from_images(*fine)
    slices, orig, recon, covered = round_trip(study, PreprocessConfig(n_slices=3))
    cord = sitk.GetArrayFromImage(to_canonical(study.cord)) > 0
    for s in slices:
        t, i = s.transform, s.transform.slice_index
        src = np.clip(orig[i], t.intensity_lo, t.intensity_hi)
        slack = 1e-4 * (t.intensity_hi - t.intensity_lo)
        inside = ndimage.binary_erosion(covered[i], iterations=2)
        assert (recon[i][inside] >= ndimage.minimum_filter(src, size=7)[inside] - slack).all()
        assert (recon[i][inside] <= ndimage.maximum_filter(src, size=7)[inside] + slack).all()
        err = np.abs(recon[i] - src)[cord[i]]
        assert err.mean() < 0.05 * (t.intensity_hi - t.intensity_lo)


@pytest.mark.realdata
def test_maps_to_volume_geometry_and_zero_outside(errsm):
    files = next(iter(errsm.values()))
    study = load_study(files["image"], files["cord"])
    slices = prepare_slices(study, PreprocessConfig(n_slices=3))
    labels = [np.where(s.roi, k + 2, 0).astype(np.float32) for k, s in enumerate(slices)]
    vol = maps_to_volume(labels, slices, study.image, interpolation="nearest")
    assert vol.GetPixelID() == sitk.sitkFloat32
    for attr in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(vol, attr)() == getattr(study.image, attr)()
    canon = sitk.GetArrayFromImage(to_canonical(vol))
    cord = sitk.GetArrayFromImage(to_canonical(study.cord)) > 0
    analysed = [s.transform.slice_index for s in slices]
    assert not np.delete(canon, analysed, axis=0).any()
    for k, i in enumerate(analysed):
        # Nearest keeps label values; each label sits exactly on its slice's cord.
        np.testing.assert_array_equal(canon[i], np.where(cord[i], k + 2, 0))


def test_maps_to_volume_refuses_mismatched_inputs():
    image, cord = np.random.default_rng(0).uniform(1, 2, (3, 20, 10)).astype(np.float32), np.zeros((3, 20, 10), np.uint8)
    cord[1, 2:18, 4:6] = 1
    study = study_from_arrays(image, cord, direction=PIL_DIRECTION)
    slices = prepare_slices(study, PreprocessConfig(size=32))
    with pytest.raises(ValueError, match="1 maps for 0 slices"):
        maps_to_volume([slices[0].image], [], study.image)
    other = sitk.Image(4, 21, 3, sitk.sitkFloat32)
    with pytest.raises(ValueError, match="does not belong"):
        maps_to_volume([slices[0].image], slices, other)


@pytest.mark.realdata
def test_grid_coords_of_landmark_points(errsm):
    """A landmark voxel's physical point maps to the grid pixel where the resampled landmark lands."""
    files = next(iter(errsm.values()))
    study = load_study(files["image"], files["cord"])
    landmarks = sitk.ReadImage(str(files["landmarks"]))
    lm_canon = sitk.GetArrayFromImage(to_canonical(landmarks))
    canonical_ref = to_canonical(study.image)
    rows = {}
    for value in (2, 9):
        i, r, c = np.argwhere(lm_canon == value)[0]
        (s,) = prepare_slices(study, PreprocessConfig(slices=[int(i)]))
        kji = np.argwhere(sitk.GetArrayFromImage(landmarks) == value)[0]
        point = landmarks.TransformIndexToPhysicalPoint(tuple(int(v) for v in kji[::-1]))
        rc = s.transform.grid_coords_of_points(canonical_ref, np.asarray(point))
        on_grid = s.transform.to_grid((lm_canon[i] == value).astype(np.uint8), "nearest")
        np.testing.assert_allclose(rc[0], np.argwhere(on_grid)[0], atol=1e-6)
        rows[value] = rc[0, 0]
    assert rows[2] < rows[9]  # C2 above T2
