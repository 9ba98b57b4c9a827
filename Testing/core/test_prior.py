"""The PAM50 prior: the constants are what the template files say, and filling never leaves
the span between two known bodies."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.levels.levels import vertebra_name, vertebra_number
from u2adcore.levels.prior import PAM50_BODY_Z_MM, cord_centreline, fill_bodies


def _template(realspine, name: str) -> sitk.Image:
    return sitk.ReadImage(str(realspine / "sct_testing_data" / "template" / "template" / f"PAM50_small_{name}.nii.gz"))


@pytest.mark.realdata
def test_constants_are_disc_midpoints_of_the_pam50_template(realspine):
    discs = _template(realspine, "label_disc")
    arr = sitk.GetArrayViewFromImage(discs)
    disc_z = {}
    for value in np.unique(arr[arr > 0]):
        kji = np.argwhere(arr == value).mean(axis=0)
        disc_z[int(value)] = discs.TransformContinuousIndexToPhysicalPoint(kji[::-1].tolist())[2]
    recomputed = {vertebra_name(n): (disc_z[n] + disc_z[n + 1]) / 2 for n in disc_z if n + 1 in disc_z}
    assert recomputed.keys() == PAM50_BODY_Z_MM.keys()
    for name, z in PAM50_BODY_Z_MM.items():
        assert recomputed[name] == pytest.approx(z, abs=1e-6), name


@pytest.mark.realdata
def test_each_centre_lies_in_its_own_level_on_a_straight_template_cord(realspine):
    levels = _template(realspine, "levels")
    arr = sitk.GetArrayViewFromImage(levels)
    z_of_plane = np.array([levels.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(arr.shape[0])])
    for name, z in PAM50_BODY_Z_MM.items():
        planes = np.unique(np.argwhere(arr == vertebra_number(name))[:, 0])
        assert z_of_plane[planes].min() <= z <= z_of_plane[planes].max(), name
    zs, centre = cord_centreline(_template(realspine, "cord"))
    top, bottom = max(PAM50_BODY_Z_MM.values()), min(PAM50_BODY_Z_MM.values())
    span = centre[(zs >= bottom) & (zs <= top)]
    assert np.ptp(span[:, 0]) < 1.0 and np.ptp(span[:, 1]) < 1.0


def test_fill_without_a_cord_follows_the_prior_fractions_and_never_extrapolates():
    known = {"C3": np.array([0.0, 10.0, 100.0]), "C6": np.array([6.0, 4.0, 40.0])}
    filled = fill_bodies(known, ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1"))
    assert sorted(filled) == ["C4", "C5"]
    z = PAM50_BODY_Z_MM
    for name in filled:
        frac = (z["C3"] - z[name]) / (z["C3"] - z["C6"])
        assert np.allclose(filled[name], known["C3"] + frac * (known["C6"] - known["C3"]))


def test_fill_with_a_cord_puts_points_on_the_cord_centre():
    # A cord tilted in x (left-right) and curved in y (anterior-posterior), 1 mm voxels, z up.
    n_z = 120
    arr = np.zeros((n_z, 40, 40), dtype=np.uint8)  # (z, y, x)
    for k in range(n_z):
        cx, cy = 10 + k // 8, 20 + int(round(6 * np.sin(k / 30)))
        arr[k, cy - 2:cy + 3, cx - 2:cx + 3] = 1
    cord = sitk.GetImageFromArray(arr)
    zs, centre = cord_centreline(cord)
    assert np.all(np.diff(zs) > 0) and centre.shape == (n_z, 3)
    known = {"C2": centre[110], "T2": centre[5]}
    filled = fill_bodies(known, ("C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2"), cord)
    assert sorted(filled) == ["C3", "C4", "C5", "C6", "C7", "T1"]
    for name, point in filled.items():
        frac = (PAM50_BODY_Z_MM["C2"] - PAM50_BODY_Z_MM[name]) / (PAM50_BODY_Z_MM["C2"] - PAM50_BODY_Z_MM["T2"])
        assert point[2] == pytest.approx(110 + frac * (5 - 110))
        k = int(np.floor(point[2]))
        lo, hi = centre[k], centre[k + 1]
        assert np.allclose(point[:2], lo[:2] + (point[2] - k) * (hi[:2] - lo[:2]))
        assert arr[int(round(point[2])), int(round(point[1])), int(round(point[0]))] == 1
