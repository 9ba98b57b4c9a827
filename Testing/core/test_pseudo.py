"""Pseudo-lesions pasted into studies (METHOD.md §8): placement, size, signal, labels, no side effects."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from u2adcore.config import SEGMENTS, PseudoAnomalyConfig
from u2adcore.data.phantom import make_phantom
from u2adcore.data.pseudo import csf_band, insert_pseudo_lesions
from u2adcore.errors import InputError
from u2adcore.io.study import load_study


def canonical(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.DICOMOrient(img, "PIL"))


@pytest.fixture(scope="module")
def phantom_study():
    return make_phantom(41).to_study("p41")


def check_lesions(before, result, cfg=PseudoAnomalyConfig()):
    """Properties every insertion must have, checked against the untouched study `before`."""
    img0, img1 = canonical(before.image), canonical(result.study.image)
    cord = canonical(before.cord) > 0
    lesion = canonical(result.study.lesion) > 0
    assert lesion.any() and not (lesion & ~cord).any()
    np.testing.assert_array_equal(img1[~lesion], img0[~lesion])  # nothing changes outside the lesions
    spacing = sitk.DICOMOrient(before.image, "PIL").GetSpacing()
    pixel_area = spacing[0] * spacing[1]
    for les in result.lesions:
        i = les.slice_index
        band = img0[i][csf_band(cord[i], (spacing[1], spacing[0]), cfg.csf_ring_mm)]
        cord_mean = img0[i][cord[i]].mean()
        csf_mean = band[band > cord_mean].mean()  # CSF: the band's pixels brighter than the cord
        assert cord_mean <= les.mean <= csf_mean  # a T2 hyperintensity: brighter than cord, darker than CSF
        assert 1.0 <= les.length_mm / les.width_mm <= 4.0
        ellipse_area = np.pi / 4 * les.width_mm * les.length_mm
        assert 0 < les.n_voxels * pixel_area <= ellipse_area + 2 * (les.width_mm + les.length_mm) * max(spacing[:2])
    in_slices = sorted({les.slice_index for les in result.lesions})
    assert np.flatnonzero(lesion.any(axis=(1, 2))).tolist() == in_slices
    grid = (before.image.GetSize(), before.image.GetSpacing(), before.image.GetOrigin(), before.image.GetDirection())
    out = result.study.image
    assert (out.GetSize(), out.GetSpacing(), out.GetOrigin(), out.GetDirection()) == grid
    assert result.study.lesion.GetPixelID() == sitk.sitkUInt8 and result.patient_label == 1


def test_phantom_study_gets_lesions_in_the_mid_slice_only(phantom_study):
    before = canonical(phantom_study.image).copy()
    result = insert_pseudo_lesions(phantom_study, np.random.default_rng(0), n_lesions=(2, 2))
    np.testing.assert_array_equal(canonical(phantom_study.image), before)  # input untouched
    assert sitk.GetArrayViewFromImage(phantom_study.lesion).sum() == 0  # healthy phantom's mask untouched
    check_lesions(phantom_study, result)
    cord = canonical(phantom_study.cord)
    mid = int(np.argmax(cord.sum(axis=(1, 2))))
    assert len(result.lesions) == 2 and {les.slice_index for les in result.lesions} == {mid}
    lesion_pixels = canonical(result.study.image)[canonical(result.study.lesion) > 0]
    assert lesion_pixels.mean() > canonical(phantom_study.image)[mid][cord[mid] > 0].mean()


def test_edge_lesions_touch_the_cord_surface_and_are_narrower(phantom_study):
    cfg = PseudoAnomalyConfig(placement="edge")
    result = insert_pseudo_lesions(phantom_study, np.random.default_rng(3), n_lesions=(3, 3), cfg=cfg)
    check_lesions(phantom_study, result, cfg)
    cord = canonical(phantom_study.cord) > 0
    lesion = canonical(result.study.lesion) > 0
    i = result.lesions[0].slice_index
    surface = cord[i] & ~np.pad(cord[i], ((0, 0), (1, 1)))[:, :-2] | cord[i] & ~np.pad(cord[i], ((0, 0), (1, 1)))[:, 2:]
    labels, n = ndimage.label(lesion[i])
    assert n >= 1 and all((surface & (labels == k)).any() for k in range(1, n + 1))  # every lesion reaches the A or P surface
    central = insert_pseudo_lesions(phantom_study, np.random.default_rng(3), n_lesions=(3, 3))
    assert max(les.width_mm for les in result.lesions) < min(les.width_mm for les in central.lesions)
    with pytest.raises(ValueError, match="unknown lesion placement 'middle'"):
        insert_pseudo_lesions(phantom_study, np.random.default_rng(3), cfg=PseudoAnomalyConfig(placement="middle"))


def test_segment_labels_follow_lesion_centroids_between_body_centres(phantom_study):
    result = insert_pseudo_lesions(phantom_study, np.random.default_rng(3), n_lesions=(3, 3))
    assert set(result.segment_labels) == set(SEGMENTS)
    bodies = phantom_study.levels.bodies
    for seg in SEGMENTS:
        upper, lower = (bodies[name][2] for name in seg.split("-"))
        hit = any(lower <= les.centroid[2] <= upper for les in result.lesions)
        assert result.segment_labels[seg] == int(hit)
    for les in result.lesions:  # centred between the C2 and T1 bodies, so always in a scored segment
        assert bodies["T1"][2] - 2.0 <= les.centroid[2] <= bodies["C2"][2] + 2.0
    assert sum(result.segment_labels.values()) >= 1
    no_levels = dataclasses.replace(phantom_study, levels=None)
    assert insert_pseudo_lesions(no_levels, np.random.default_rng(3)).segment_labels == {}


def test_with_partial_levels_lesions_stay_in_the_segments_that_are_scored(phantom_study):
    bodies = phantom_study.levels.bodies
    partial = dataclasses.replace(phantom_study, levels=dataclasses.replace(
        phantom_study.levels, bodies={n: bodies[n] for n in ("C3", "C4", "C5")}))
    assert partial.levels.unknown_segments == ("C2-C3", "C5-C6", "C6-C7", "C7-T1")
    for seed in range(6):
        result = insert_pseudo_lesions(partial, np.random.default_rng(seed), n_lesions=(2, 2))
        for les in result.lesions:  # centred between the C3 and C5 bodies: the only scored rows
            assert bodies["C5"][2] - 2.0 <= les.centroid[2] <= bodies["C3"][2] + 2.0
        assert sorted(result.segment_labels) == ["C3-C4", "C4-C5"] and sum(result.segment_labels.values()) >= 1


def test_neighbours_and_explicit_slices(phantom_study):
    cord = canonical(phantom_study.cord)
    mid = int(np.argmax(cord.sum(axis=(1, 2))))
    result = insert_pseudo_lesions(phantom_study, np.random.default_rng(1), cfg=PseudoAnomalyConfig(n_neighbours=1))
    assert {les.slice_index for les in result.lesions} == {mid - 1, mid, mid + 1}
    assert all(1 <= sum(les.slice_index == i for les in result.lesions) <= 3 for i in (mid - 1, mid, mid + 1))
    check_lesions(phantom_study, result)
    with pytest.raises(InputError, match="sagittal slice 0 holds no cord"):
        insert_pseudo_lesions(phantom_study, np.random.default_rng(1), slices=[0])
    with pytest.raises(InputError, match="n_lesions must be a range"):
        insert_pseudo_lesions(phantom_study, np.random.default_rng(1), n_lesions=(0, 2))


def test_same_generator_state_gives_the_same_lesions(phantom_study):
    a = insert_pseudo_lesions(phantom_study, np.random.default_rng(7))
    b = insert_pseudo_lesions(phantom_study, np.random.default_rng(7))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a.study.image), sitk.GetArrayViewFromImage(b.study.image))


def test_an_image_without_csf_contrast_is_refused(phantom_study):
    flat = sitk.Image(phantom_study.image.GetSize(), sitk.sitkFloat32) + 100.0
    flat.CopyInformation(phantom_study.image)
    with pytest.raises(InputError, match="no pixel of the band 1-3 mm around the cord is brighter than the cord"):
        insert_pseudo_lesions(dataclasses.replace(phantom_study, image=flat), np.random.default_rng(0))


@pytest.mark.realdata
def test_real_errsm_study(errsm):
    paths = errsm["errsm_11"]
    study = load_study(paths["image"], paths["cord"], levels=paths["landmarks"], levels_kind="bodies")
    before = sitk.GetArrayFromImage(study.image).copy()
    result = insert_pseudo_lesions(study, np.random.default_rng(5))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(study.image), before)
    assert study.lesion is None
    check_lesions(study, result)
    assert 1 <= len(result.lesions) <= 3
    known = [s for s in SEGMENTS if study.levels.segment_points(s) is not None]
    assert sorted(result.segment_labels) == sorted(known)
