"""Confounds for the benchmark (data.confounds): each adds the variation it names, nothing else,
never writes to its input, and the healthy and lesioned copies of a slice get the same variation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.data import confounds as cf
from u2adcore.io.study import study_from_arrays
from u2adcore.volume.orientation import to_canonical

SPACING = (1.0, 1.0, 1.0)


def phantom(n_lr=7, n_si=60, n_ap=40, cord_value=100.0, csf_value=250.0):
    """A canonical volume: a bright CSF column with a darker cord (A-P 14..21) inside it."""
    vol = np.full((n_lr, n_si, n_ap), 20.0, np.float32)
    vol[1:-1, :, 10:26] = csf_value
    cord = np.zeros(vol.shape, bool)
    cord[2:-2, 5:-5, 14:22] = True
    vol[cord] = cord_value
    return vol, cord


def test_bias_field_is_smooth_and_bounded():
    vol, _ = phantom()
    out = cf.bias_field(vol, 0.2, 0.1)
    ratio = out / vol
    assert np.allclose(ratio[0], ratio[3])  # the same in every sagittal slice
    assert ratio.max() <= np.exp(0.3) + 1e-5 and ratio.min() >= np.exp(-0.3) - 1e-5
    assert np.abs(np.diff(np.log(ratio[0]), axis=0)).max() < 0.02  # smooth along S-I
    assert np.all(np.diff(ratio[0, 30]) > 0)  # a ramp along A-P
    assert np.array_equal(cf.bias_field(vol, 0.0, 0.0), vol)


def test_edge_partial_volume_brightens_only_the_rim():
    vol, cord = phantom()
    before = vol.copy()
    out = cf.edge_partial_volume(vol, cord, 250.0, 0.4, SPACING, seed=1)
    assert np.array_equal(vol, before)
    changed = out != vol
    assert changed.any() and not (changed & ~cf.rim(cord)).any()
    rise = (out - vol)[changed]
    assert rise.min() > 0 and rise.max() <= 0.4 * 150.0 + 1e-3


def test_widen_mask_adds_one_voxel_each_side_in_ap():
    _, cord = phantom()
    wide = cf.widen_mask(cord)
    assert (wide & cord).sum() == cord.sum()
    assert wide[3, 30].sum() == cord[3, 30].sum() + 2
    assert wide.sum(axis=2).astype(bool).sum() == cord.sum(axis=2).astype(bool).sum()  # not longer in S-I


def test_central_canal_is_one_pixel_per_row_in_the_middle_slices():
    vol, cord = phantom()
    out = cf.central_canal(vol, cord, 15.0, half_width_slices=0)
    diff = out - vol
    assert np.allclose(diff[[0, 1, 2, 4, 5, 6]], 0)
    rows = np.flatnonzero(cord[3].any(axis=1))
    assert np.allclose(diff[3, rows].sum(axis=1), 15.0)
    assert np.all(cord[3][diff[3] > 0])


def test_flow_voids_darken_csf_never_the_cord():
    vol, cord = phantom()
    out = cf.flow_voids(vol, cord, 0.6, 4, SPACING, seed=3)
    assert np.array_equal(out[cord], vol[cord])
    assert (out < vol - 1).sum() > 10
    assert out.min() >= 0.4 * vol.min() - 1e-3


def test_ghosting_adds_a_shifted_copy():
    vol, _ = phantom()
    out = cf.ghosting(vol, 0.1)
    assert np.allclose(out - vol, 0.1 * np.roll(vol, 20, axis=2))


def test_gibbs_ringing_rings_at_edges_and_keeps_a_full_spectrum():
    vol, cord = phantom()
    assert np.allclose(cf.gibbs_ringing(vol, 1.0), vol, atol=1e-3)
    out = cf.gibbs_ringing(vol, 0.5)
    inside = out[3, 30, 14:22]
    assert inside.std() > 1.0  # the flat cord now has ripples
    assert abs(out.mean() - vol.mean()) < 1.0  # the DC term is kept


def test_scanner_contrast_and_noise():
    vol, cord = phantom()
    assert np.allclose(cf.scanner(vol, 1.0, 250.0, 0.0, seed=0), vol, atol=1e-3)
    brighter = cf.scanner(vol, 0.7, 250.0, 0.0, seed=0)
    assert brighter[cord].mean() / brighter[3, 30, 11] > vol[cord].mean() / vol[3, 30, 11]  # less contrast to CSF
    noisy = cf.scanner(vol, 1.0, 250.0, 10.0, seed=0)
    assert 8.5 < (noisy - vol)[cord].std() < 11.5
    assert np.array_equal(noisy, cf.scanner(vol, 1.0, 250.0, 10.0, seed=0))


def test_thick_slices_average_neighbours():
    rng = np.random.default_rng(0)
    vol = rng.random((7, 5, 4)).astype(np.float32)
    out = cf.thick_slices(vol, 3)
    assert np.allclose(out[3], vol[2:5].mean(axis=0), atol=1e-6)
    assert np.array_equal(cf.thick_slices(vol, 1), vol)


def test_lesion_at_fraction_sets_the_mean_rise():
    vol, cord = phantom()
    lesion = np.zeros_like(cord)
    lesion[3, 20:26, 15:20] = True
    rng = np.random.default_rng(1)
    lesioned = vol.copy()
    lesioned[lesion] = 200.0 + 10 * rng.standard_normal(lesion.sum())
    out = cf.lesion_at_fraction(vol, lesioned, lesion, gap=150.0, fraction=0.2)
    assert np.isclose((out - vol)[lesion].mean(), 30.0, atol=1e-3)
    assert np.array_equal(out[~lesion], vol[~lesion])


def test_draw_is_seeded_and_mixes_kinds():
    a = cf.draw_confounds(np.random.default_rng(5))
    assert a == cf.draw_confounds(np.random.default_rng(5))
    kinds = set()
    for s in range(30):
        kinds.update(cf.draw_confounds(np.random.default_rng(s)).names())
    assert {"bias", "edge", "wide mask", "canal", "voids", "ghost", "gibbs", "scanner"} <= kinds


def test_apply_to_study_keeps_input_and_gives_both_copies_the_same_variation():
    vol, cord = phantom(n_lr=9)
    study = study_from_arrays(vol, cord.astype(np.uint8), spacing=(1.0, 1.0, 1.0))
    lesion = np.zeros(cord.shape, np.uint8)
    canon_cord = sitk.GetArrayFromImage(to_canonical(study.cord)) > 0
    i = int(np.flatnonzero(canon_cord.any(axis=(1, 2)))[2])
    r, c = np.argwhere(canon_cord[i]).mean(axis=0).astype(int)
    canon_img = sitk.GetArrayFromImage(to_canonical(study.image))
    canon_img[i, r - 2:r + 3, c - 1:c + 2] += 80.0
    lesioned_img = sitk.GetImageFromArray(canon_img)
    lesioned_img.CopyInformation(to_canonical(study.image))
    from u2adcore.volume.orientation import from_canonical

    lesioned = dataclasses.replace(study, image=from_canonical(lesioned_img, study.image))
    c_all = cf.Confounds(seed=7, bias_si=0.2, bias_ap=0.1, edge_fraction=0.3, widen_mask=True,
                         canal_fraction=0.2, gamma=0.8, snr=12.0)
    before = sitk.GetArrayFromImage(study.image).copy()
    levels = cf.study_levels(study)
    h = cf.apply_confounds(study, c_all, levels)
    l_ = cf.apply_confounds(lesioned, c_all, levels)
    assert np.array_equal(sitk.GetArrayFromImage(study.image), before)
    hv, lv = (sitk.GetArrayFromImage(to_canonical(s.image)) for s in (h, l_))
    differs = hv != lv
    assert differs[i, r - 2:r + 3, c - 1:c + 2].all() and differs.sum() == 15
    assert sitk.GetArrayFromImage(h.cord).sum() > cord.sum()
    assert h.image.GetSize() == study.image.GetSize()
    assert np.array_equal(hv, sitk.GetArrayFromImage(to_canonical(cf.apply_confounds(study, c_all, levels).image)))


@pytest.mark.parametrize("keep", [0.4, 0.7])
def test_confounded_real_cord_stays_plausible(errsm, keep):
    """On a real study the variation changes the cord's signal by amounts seen across scanners,
    not by orders of magnitude."""
    from u2adcore.io.study import load_study

    files = errsm["errsm_23"]
    study = load_study(files["image"], files["cord"])
    c = cf.Confounds(seed=1, bias_si=0.2, edge_fraction=0.3, gibbs_keep=keep, gamma=1.2, snr=15.0)
    out = cf.apply_confounds(study, c)
    cord = sitk.GetArrayFromImage(study.cord) > 0
    a, b = sitk.GetArrayFromImage(study.image)[cord], sitk.GetArrayFromImage(out.image)[cord]
    assert 0.5 < np.median(b) / np.median(a) < 2.0
    assert np.corrcoef(a, b)[0, 1] > 0.3
