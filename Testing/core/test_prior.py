"""The PAM50 prior: the constants are what the template files say, and filling never leaves
the span between two known bodies."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.levels.levels import vertebra_name, vertebra_number
from u2adcore.levels.prior import (
    PAM50_BODY_Z_MM,
    PAM50_DISC_Z_MM,
    centreline_of,
    cord_centreline,
    end_bodies_from_discs,
    fill_bodies,
    place_between,
)


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
    assert disc_z == pytest.approx(PAM50_DISC_Z_MM, abs=1e-6)
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


def test_fill_with_a_cord_lays_the_fractions_along_its_arc_length():
    # A cord tilted in x (left-right) and curved in y (anterior-posterior), 1 mm voxels, z up.
    n_z = 120
    arr = np.zeros((n_z, 40, 40), dtype=np.uint8)  # (z, y, x)
    for k in range(n_z):
        cx, cy = 10 + k // 8, 20 + int(round(6 * np.sin(k / 30)))
        arr[k, cy - 2:cy + 3, cx - 2:cx + 3] = 1
    cord = sitk.GetImageFromArray(arr)
    zs, centre = cord_centreline(cord)
    assert np.all(np.diff(zs) > 0) and centre.shape == (n_z, 3)
    line = centreline_of(cord)
    assert np.all(np.diff(line.arc) >= 1.0)  # never shorter than the z step
    known = {"C2": centre[110], "T2": centre[5]}
    filled = fill_bodies(known, ("C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2"), cord)
    assert sorted(filled) == ["C3", "C4", "C5", "C6", "C7", "T1"]
    s_c2, s_t2 = np.interp(110, line.z, line.arc), np.interp(5, line.z, line.arc)
    for name, point in filled.items():
        frac = (PAM50_BODY_Z_MM["C2"] - PAM50_BODY_Z_MM[name]) / (PAM50_BODY_Z_MM["C2"] - PAM50_BODY_Z_MM["T2"])
        assert np.interp(point[2], line.z, line.arc) == pytest.approx(s_c2 + frac * (s_t2 - s_c2), abs=1e-6)
        assert arr[int(round(point[2])), int(round(point[1])), int(round(point[0]))] == 1


def test_arc_length_differs_from_z_where_the_cord_tilts():
    # The cord runs at 45 degrees in its lower half: equal arc length there covers less z.
    arr = np.zeros((100, 10, 120), dtype=np.uint8)  # (z, y, x)
    for k in range(100):
        cx = 10 + max(0, 50 - k)  # tilted below z = 50, vertical above
        arr[k, 3:6, cx - 2:cx + 3] = 1
    cord = sitk.GetImageFromArray(arr)
    line = centreline_of(cord)
    mid = place_between((0.0, np.array([10.0, 4.0, 95.0])), (1.0, np.array([60.0, 4.0, 0.0])), 0.5, line)
    # 45 mm vertical + 50·√2 mm tilted: the arc midpoint lies 12.9 mm into the tilted part.
    half = (45.0 + 50.0 * np.sqrt(2)) / 2
    assert mid[2] == pytest.approx(50.0 - (half - 45.0) / np.sqrt(2), abs=1.0)
    straight = place_between((0.0, np.array([10.0, 4.0, 95.0])), (1.0, np.array([60.0, 4.0, 0.0])), 0.5, None)
    assert straight[2] == pytest.approx(47.5)


def test_end_bodies_need_two_marked_discs_and_skip_gaps():
    discs = {3: np.array([0.0, 0.0, 100.0]), 4: np.array([0.0, 0.0, 82.0]), 7: np.array([0.0, 0.0, 30.0])}
    ends = end_bodies_from_discs(discs, {"C2": 2, "C3": 3, "C4": 4, "C6": 6, "C7": 7})
    assert sorted(ends) == ["C2", "C7"]  # C4 and C6 border the gap between discs 4 and 7
    assert ends["C2"][2] == pytest.approx(100.0 + 18.0 * (PAM50_BODY_Z_MM["C2"] - PAM50_DISC_Z_MM[3]) / 18.0)
    assert end_bodies_from_discs({3: discs[3]}, {"C2": 2, "C3": 3}) == {}


@pytest.mark.realdata
def test_two_landmark_fill_against_errsm21_manual_discs(realspine):
    """docs/LEVELS.md: from the C2 and T2 landmarks, PAM50 fractions along the cord's arc length
    put errsm_21's six cervical discs within 4.6 mm of the manual ones (straight line: 7.2 mm)."""
    from u2adcore.io.images import read_image
    from u2adcore.levels.levels import label_points

    d = realspine / "sct_2014_errsm" / "errsm_21"
    cord = read_image(d / "t2_manual_segmentation.nii.gz")
    discs = label_points(read_image(d / "t2_labels-disc-manual_DERIVED-from-ivadomed.nii.gz"))
    marks = label_points(read_image(d / "t2_landmarks_C2_T2_center.nii.gz"))
    upper, lower = (PAM50_BODY_Z_MM["C2"], marks[2]), (PAM50_BODY_Z_MM["T2"], marks[9])
    line = centreline_of(cord)
    arc = np.array([place_between(upper, lower, PAM50_DISC_Z_MM[k], line)[2] - discs[k][2] for k in range(3, 9)])
    straight = np.array([place_between(upper, lower, PAM50_DISC_Z_MM[k], None)[2] - discs[k][2] for k in range(3, 9)])
    assert np.abs(arc).max() < 5.0
    assert np.abs(arc).mean() < 3.0
    assert np.abs(straight).max() > 7.0  # the straight line really was worse: this test can tell them apart
