"""Cord morphometry: AP diameter and CSA of known shapes, MSCC on phantoms with a known
narrowing, and near zero on the healthy real cords (manual masks)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.config import SEGMENTS, PhantomConfig
from u2adcore.data.phantom import make_phantom
from u2adcore.errors import InputError
from u2adcore.io.study import load_study
from u2adcore.morphometry import cord_morphometry, cord_profile, profile_csv, segment_morphometry


def tube(ap_mm: float, lr_mm: float, tilt_deg: float = 0.0, spacing=(0.5, 0.5, 0.5), narrow=None) -> sitk.Image:
    """An elliptic cylinder along S-I (canonical PIL grid: x = A-P, y = S-I, z = L-R), tilted in the sagittal plane;
    `narrow` = (row_mm, fraction) narrows the AP semi-axis around one position."""
    nx, ny, nz = 80, 240, 60
    z, y, x = np.meshgrid(np.arange(nz) * spacing[2], np.arange(ny) * spacing[1], np.arange(nx) * spacing[0], indexing="ij")
    t = np.tan(np.radians(tilt_deg))
    ap_c = nx * spacing[0] / 2 + (y - ny * spacing[1] / 2) * t
    d_ap = (x - ap_c) * np.cos(np.radians(tilt_deg))  # perpendicular distance in the sagittal plane
    a = np.full_like(y, ap_mm / 2)
    if narrow is not None:
        a = a * (1 - narrow[1] * np.exp(-0.5 * ((y - narrow[0]) / 5.0) ** 2))
    inside = (d_ap / a) ** 2 + ((z - nz * spacing[2] / 2) / (lr_mm / 2)) ** 2 <= 1
    img = sitk.GetImageFromArray(inside.astype(np.uint8))
    img.SetSpacing(spacing)
    img.SetDirection((0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0))  # PIL
    return img


def test_straight_tube_has_its_diameter_and_area():
    p = cord_profile(tube(7.0, 11.0))
    mid = slice(20, -20)
    assert np.median(p.ap_mm[mid]) == pytest.approx(7.0, abs=0.4)
    assert np.median(p.csa_mm2[mid]) == pytest.approx(np.pi * 3.5 * 5.5, rel=0.05)


def test_tilt_is_corrected():
    straight, tilted = cord_profile(tube(7.0, 11.0)), cord_profile(tube(7.0, 11.0, tilt_deg=30.0))
    mid = slice(30, -30)
    assert np.median(tilted.ap_mm[mid]) == pytest.approx(np.median(straight.ap_mm[mid]), abs=0.5)
    assert np.median(tilted.csa_mm2[mid]) == pytest.approx(np.median(straight.csa_mm2[mid]), rel=0.08)


def test_orientation_does_not_change_the_profile():
    img = tube(7.0, 11.0, tilt_deg=15.0)
    a = cord_profile(img)
    b = cord_profile(sitk.DICOMOrient(img, "LPS"))
    np.testing.assert_allclose(a.ap_mm, b.ap_mm, atol=1e-6)
    np.testing.assert_allclose(a.csa_mm2, b.csa_mm2, atol=1e-6)


def test_mscc_of_a_narrowed_tube_follows_the_definition():
    img = tube(7.3, 11.0, narrow=(60.0, 0.4))  # not a whole number of voxels: no rounding luck either way
    p = cord_profile(img)
    rows = {"C2": 70.0, "C3": 170.0}  # canonical rows (0.5 mm): C2-C3 holds the dip at 60 mm = row 120
    seg = {m.name: m for m in segment_morphometry(p, rows)}
    assert seg["C2-C3"].mscc == pytest.approx(100 * (1 - seg["C2-C3"].min_ap_mm / np.mean([seg["C2-C3"].ap_above_mm, seg["C2-C3"].ap_below_mm])))
    assert seg["C2-C3"].mscc == pytest.approx(40.0, abs=8.0)  # ±1 voxel (0.5 mm) of a 7.3 mm cord is ±7 %
    assert not seg["C3-C4"].known and seg["C3-C4"].mscc is None
    assert "position_mm,ap_mm,csa_mm2" in profile_csv(p)


@pytest.mark.parametrize("fraction,segment", [(0.3, "C4-C5"), (0.5, "C5-C6")])
def test_phantom_compression_is_measured(fraction, segment):
    ph = make_phantom(2, cfg=PhantomConfig(compression=fraction, compression_segment=segment))
    study = ph.to_study()
    m = cord_morphometry(study.cord, study.levels).by_name()
    assert m[segment].mscc == pytest.approx(100 * fraction, abs=8.0)
    others = [m[s].mscc for s in SEGMENTS if s != segment and m[s].mscc is not None]
    assert max(others) < 15.0


def test_phantom_compression_keeps_the_rest_of_the_spine():
    plain = make_phantom(3, cfg=PhantomConfig(n_slices=5))
    squeezed = make_phantom(3, cfg=PhantomConfig(n_slices=5, compression=0.4))
    a, b = sitk.GetArrayFromImage(plain.cord), sitk.GetArrayFromImage(squeezed.cord)
    assert b.sum() < a.sum() and not np.any(b & ~a)  # only narrowed, nowhere moved
    assert plain.body_centres.keys() == squeezed.body_centres.keys()
    for name in plain.body_centres:
        np.testing.assert_allclose(plain.body_centres[name], squeezed.body_centres[name])


def test_phantom_compression_setting_is_checked():
    with pytest.raises(InputError, match="compression"):
        make_phantom(1, cfg=PhantomConfig(n_slices=3, compression=0.3, compression_segment="C9-C10"))


def test_healthy_real_cords_have_small_mscc(errsm):
    values = []
    for name, f in errsm.items():
        study = load_study(f["image"], f["cord"], levels=f["landmarks"], levels_kind="bodies")
        values += [s.mscc for s in cord_morphometry(study.cord, study.levels).segments if s.mscc is not None]
    values = np.array(values)
    assert len(values) == 6 * len(errsm)
    assert abs(np.median(values)) < 6.0 and values.max() < 20.0 and values.min() > -10.0
