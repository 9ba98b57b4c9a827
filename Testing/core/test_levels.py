"""Vertebral levels from label images: numbering, centroids, disc midpoints, the prior fill on
real studies, and the errors a user meets with a wrong or empty file."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.config import SEGMENTS
from u2adcore.errors import InputError
from u2adcore.io.images import read_image
from u2adcore.levels.levels import (
    build_levels,
    label_points,
    parse_level_label,
    read_levels,
    vertebra_name,
    vertebra_number,
)
from u2adcore.levels.prior import PAM50_BODY_Z_MM, PAM50_DISC_Z_MM

# PSR layout like the errsm files: voxel axes toward Posterior, Inferior, Right (LPS columns).
PSR = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def make_image(size=(20, 40, 10), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=PSR, dtype=np.int16):
    img = sitk.GetImageFromArray(np.zeros(size[::-1], dtype=dtype))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def write_labels(tmp_path, labels: dict[int, list[tuple[int, int, int]]], name="labels.nii.gz", **geometry) -> tuple:
    img = make_image(**geometry)
    for value, voxels in labels.items():
        for ijk in voxels:
            img[ijk] = value
    path = tmp_path / name
    sitk.WriteImage(img, str(path))
    return path, img


def physical(img: sitk.Image, ijk) -> np.ndarray:
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    return np.asarray(img.GetOrigin()) + d @ (np.asarray(img.GetSpacing()) * np.asarray(ijk, float))


def disc_points(numbers, step=17.0) -> dict[int, np.ndarray]:
    """Discs on a straight vertical cord, one every `step` mm going down."""
    return {k: np.array([1.0, -2.0, 200.0 - step * k]) for k in numbers}


@pytest.mark.parametrize(
    "label, expected",
    [("C3", ("bodies", 3)), ("t1", ("bodies", 8)), ("C2-C3", ("discs", 3)), ("C7/T1", ("discs", 8)),
     ("L5-S1", ("discs", 25)), ("C3-C5", None), ("C3-C2", None), ("F-1", None), ("C8", None)],
)
def test_parse_level_label(label, expected):
    assert parse_level_label(label) == expected


def test_vertebra_numbering_round_trips():
    assert [vertebra_name(n) for n in (1, 7, 8, 9, 19, 20, 25)] == ["C1", "C7", "T1", "T2", "T12", "L1", "S1"]
    assert all(vertebra_number(vertebra_name(n)) == n for n in range(1, 26))


def test_label_centroid_is_in_physical_space_on_its_own_grid(tmp_path):
    geometry = dict(size=(30, 50, 12), spacing=(0.5, 1.0, 2.0), origin=(10.0, -20.0, 60.0))
    path, img = write_labels(tmp_path, {3: [(4, 10, 5), (6, 12, 5)], 4: [(5, 30, 6)]}, **geometry)
    points = label_points(read_image(path), path)
    assert np.allclose(points[3], physical(img, (5, 11, 5)), atol=1e-4)
    assert np.allclose(points[4], physical(img, (5, 30, 6)), atol=1e-4)
    # A reference on another grid (identity direction, coarser) still gets the same points.
    reference = make_image(size=(40, 40, 80), spacing=(1.5, 1.5, 1.5), origin=(-30.0, -30.0, -30.0),
                           direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    levels = read_levels(path, "bodies", reference)
    assert np.allclose(levels.bodies["C3"], points[3]) and np.allclose(levels.bodies["C4"], points[4])
    assert levels.source == "bodies" and levels.inferred == () and levels.path == str(path)
    assert levels.unknown_segments == tuple(s for s in SEGMENTS if s != "C3-C4")


def test_discs_give_body_midpoints_and_every_segment():
    discs = disc_points(range(2, 10))
    levels = build_levels(discs, "discs")
    assert list(levels.bodies) == ["C2", "C3", "C4", "C5", "C6", "C7", "T1"]
    assert np.allclose(levels.bodies["C4"], (discs[4] + discs[5]) / 2)
    upper, lower = levels.segment_points("C7-T1")
    assert np.allclose(upper, (discs[7] + discs[8]) / 2) and np.allclose(lower, (discs[8] + discs[9]) / 2)
    assert levels.unknown_segments == () and levels.inferred == () and levels.source == "discs"


def test_six_discs_give_six_segments_with_the_end_bodies_inferred():
    discs = disc_points(range(3, 9))  # C2-C3 … C7-T1, 17 mm apart on a straight cord
    levels = build_levels(discs, "discs")
    assert levels.unknown_segments == ()
    assert levels.inferred == ("C2", "T1") and levels.source == "discs+PAM50 prior"
    # The end body lies the template's disc-to-centre distance beyond the end disc, scaled by the
    # subject's neighbouring disc interval (17 mm here against the template's 18 mm).
    d, b = PAM50_DISC_Z_MM, PAM50_BODY_Z_MM
    assert levels.bodies["C2"][2] == pytest.approx(discs[3][2] + 17.0 * (b["C2"] - d[3]) / (d[3] - d[4]))
    assert levels.bodies["T1"][2] == pytest.approx(discs[8][2] - 17.0 * (d[8] - b["T1"]) / (d[7] - d[8]))
    assert np.allclose(levels.bodies["C2"][:2], [1.0, -2.0]) and np.allclose(levels.bodies["T1"][:2], [1.0, -2.0])
    assert np.allclose(levels.bodies["C3"], (discs[3] + discs[4]) / 2)  # marked midpoints stay as they are


def test_seven_bodies_give_six_segments_with_nothing_inferred():
    bodies = {n: np.array([0.0, 0.0, 200.0 - 17.0 * n]) for n in range(2, 9)}  # C2 … T1
    levels = build_levels(bodies, "bodies")
    assert levels.unknown_segments == () and levels.inferred == () and levels.source == "bodies"


def test_two_discs_place_the_two_segments_around_their_body():
    levels = build_levels(disc_points([4, 5]), "discs")  # C3-C4, C4-C5
    assert levels.inferred == ("C3", "C5")
    assert levels.unknown_segments == ("C2-C3", "C5-C6", "C6-C7", "C7-T1")


def test_one_disc_places_no_segment():
    with pytest.raises(InputError, match="no segment .* can be placed from these discs"):
        build_levels(disc_points([4]), "discs")


def test_six_discs_on_a_curved_cord_put_the_end_bodies_on_the_cord():
    # A cord bending anteriorly (y) by up to 8 mm over 140 mm, 1 mm voxels, z up.
    arr = np.zeros((140, 40, 30), dtype=np.uint8)
    centre = {k: (15, 20 + 8 * np.sin(np.pi * k / 140)) for k in range(140)}
    for k, (cx, cy) in centre.items():
        arr[k, int(round(cy)) - 2:int(round(cy)) + 3, cx - 2:cx + 3] = 1
    cord = sitk.GetImageFromArray(arr)
    discs = {n: np.array([15.0, centre[z][1], float(z)]) for n, z in zip(range(3, 9), range(120, 20, -18))}
    levels = build_levels(discs, "discs", cord=cord)
    assert levels.unknown_segments == () and levels.inferred == ("C2", "T1")
    for name in ("C2", "T1"):
        x, y, z = (int(round(v)) for v in levels.bodies[name])
        assert arr[z, y, x] == 1, name
    assert discs[3][2] < levels.bodies["C2"][2] < discs[3][2] + 10 and discs[8][2] - 12 < levels.bodies["T1"][2] < discs[8][2]


def test_missing_middle_disc_is_filled_from_the_prior():
    discs = disc_points([2, 3, 4, 6, 7, 8, 9])
    levels = build_levels(discs, "discs")
    assert levels.inferred == ("C4", "C5") and levels.source == "discs+PAM50 prior"
    z = {name: p[2] for name, p in levels.bodies.items()}
    c3, c6 = z["C3"], z["C6"]
    frac = (PAM50_BODY_Z_MM["C3"] - PAM50_BODY_Z_MM["C4"]) / (PAM50_BODY_Z_MM["C3"] - PAM50_BODY_Z_MM["C6"])
    assert z["C4"] == pytest.approx(c3 + frac * (c6 - c3))
    assert levels.unknown_segments == ()


def test_label_image_needs_an_explicit_kind(tmp_path):
    path, img = write_labels(tmp_path, {3: [(5, 10, 5)], 5: [(5, 30, 5)]})
    with pytest.raises(InputError, match=r"labels\.nii\.gz: .*--levels-kind discs .*--levels-kind bodies"):
        read_levels(path, None, img)


@pytest.mark.parametrize(
    "labels, kind, message",
    [
        ({}, "bodies", "no nonzero voxel"),
        ({30: [(5, 10, 5)], 3: [(5, 5, 5)]}, "discs", r"discs label values \[30\] are outside 1\.\.25"),
        ({3: [(5, 30, 5)], 4: [(5, 10, 5)]}, "bodies", "not ordered superior to inferior: C4 .* is not below C3"),
        ({2: [(5, 10, 5)]}, "bodies", r"no segment .* can be placed from these bodies \(found C2\)"),
        ({3: [(5, 10, 5)], 4: [(5, 20, 5)]}, "vertebrae", "unknown levels kind 'vertebrae'"),
    ],
)
def test_bad_label_files_are_refused(tmp_path, labels, kind, message):
    path, img = write_labels(tmp_path, labels)
    with pytest.raises(InputError, match=message):
        read_levels(path, kind, img)


def test_fractional_label_values_are_refused(tmp_path):
    img = make_image(dtype=np.float32)
    img[5, 10, 5] = 2.5
    path = tmp_path / "float.nii.gz"
    sitk.WriteImage(img, str(path))
    with pytest.raises(InputError, match="whole numbers, found \\[2.5\\]"):
        read_levels(path, "bodies", img)


def test_levels_off_the_image_are_refused(tmp_path):
    path, _ = write_labels(tmp_path, {2: [(5, 10, 5)], 3: [(5, 20, 5)]})
    elsewhere = make_image(origin=(300.0, 0.0, 0.0))
    with pytest.raises(InputError, match="bodies label C2 at LPS .* lies outside the image"):
        read_levels(path, "bodies", elsewhere)


@pytest.mark.realdata
def test_errsm_two_landmarks_fill_the_cervical_bodies_inside_the_cord(errsm):
    assert len(errsm) == 5
    for files in errsm.values():
        image, cord = read_image(files["image"]), read_image(files["cord"])
        levels = read_levels(files["landmarks"], "bodies", image, cord)
        assert levels.source == "bodies+PAM50 prior"
        assert levels.inferred == ("C3", "C4", "C5", "C6", "C7", "T1")
        assert levels.unknown_segments == ()
        z = np.array([p[2] for p in levels.bodies.values()])
        assert 112.0 <= z[0] - z[-1] <= 128.0  # C2 -> T2 along superior-inferior
        assert np.all(np.diff(z) < 0)  # superior -> inferior, in VERTEBRAE order
        cord_arr = sitk.GetArrayViewFromImage(cord)
        for name in levels.bodies:
            ijk = cord.TransformPhysicalPointToIndex(levels.bodies[name].tolist())
            assert cord_arr[ijk[::-1]] > 0, f"{files['image']}: {name} is outside the cord"


@pytest.mark.realdata
def test_without_a_cord_filled_bodies_lie_between_the_landmarks(errsm):
    files = errsm["errsm_11"]
    levels = read_levels(files["landmarks"], "bodies", read_image(files["image"]))
    c2, t2 = levels.bodies["C2"], levels.bodies["T2"]
    for name in levels.inferred:
        frac = (PAM50_BODY_Z_MM["C2"] - PAM50_BODY_Z_MM[name]) / (PAM50_BODY_Z_MM["C2"] - PAM50_BODY_Z_MM["T2"])
        assert np.allclose(levels.bodies[name], c2 + frac * (t2 - c2))


@pytest.mark.realdata
def test_landmarks_beyond_t2_anchor_the_fill_without_being_kept(realspine, caplog):
    folder = realspine / "sct_example_data" / "t2"
    image, cord = read_image(folder / "t2.nii.gz"), read_image(folder / "t2_seg.nii.gz")
    with caplog.at_level(logging.WARNING, logger="u2adcore.levels.levels"):
        levels = read_levels(folder / "labels_DERIVED-from-2014-grid.nii.gz", "bodies", image, cord)  # C3 and T4
    assert "segments C2-C3 cannot be placed" in caplog.text
    assert list(levels.bodies) == ["C3", "C4", "C5", "C6", "C7", "T1", "T2"]
    assert levels.inferred == ("C4", "C5", "C6", "C7", "T1", "T2")
    assert levels.unknown_segments == ("C2-C3",)


@pytest.mark.realdata
def test_segment_rows_on_a_prepared_errsm_slice(errsm):
    from u2adcore.config import PreprocessConfig
    from u2adcore.io.study import load_study
    from u2adcore.levels.levels import segment_rows
    from u2adcore.volume.orientation import to_canonical
    from u2adcore.volume.preprocess import prepare_slices

    files = errsm["errsm_23"]
    study = load_study(files["image"], files["cord"], levels=files["landmarks"], levels_kind="bodies")
    (prepared,) = prepare_slices(study, PreprocessConfig())
    rows = segment_rows(study.levels, prepared, to_canonical(study.image))
    assert list(rows) == list(SEGMENTS) and all(span is not None for span in rows.values())
    for (_, end), (start, _) in zip(list(rows.values()), list(rows.values())[1:]):
        assert end == pytest.approx(start)  # neighbouring segments share a body centre
    starts = np.array([span[0] for span in rows.values()])
    assert np.all(np.diff(starts) > 0)  # rows run superior -> inferior
    # The grid is 1 mm and this study is not oblique: rows measure superior-inferior mm.
    bodies = study.levels.bodies
    assert rows["C7-T1"][1] - rows["C2-C3"][0] == pytest.approx(bodies["C2"][2] - bodies["T1"][2], abs=1e-3)
    for start, end in rows.values():
        assert prepared.roi[int(round(start))].any() and prepared.roi[int(round(end))].any()


@pytest.mark.realdata
def test_errsm21_six_manual_discs_score_six_segments_and_place_t1_within_2mm(realspine):
    """The extrapolated T1 body against the midpoint of the manual C7-T1 and T1-T2 discs
    (docs/LEVELS.md: -0.7 mm measured)."""
    d = realspine / "sct_2014_errsm" / "errsm_21"
    cord = read_image(d / "t2_manual_segmentation.nii.gz")
    discs = label_points(read_image(d / "t2_labels-disc-manual_DERIVED-from-ivadomed.nii.gz"))
    levels = build_levels({k: discs[k] for k in range(3, 9)}, "discs", cord=cord)
    assert levels.unknown_segments == () and levels.inferred == ("C2", "T1")
    assert abs(levels.bodies["T1"][2] - (discs[8][2] + discs[9][2]) / 2) < 2.0
