"""Slicer markups point lists: reading LPS and RAS files, naming discs or bodies, and writing a
file that reads back to the same levels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.errors import InputError
from u2adcore.levels.levels import build_levels, read_levels
from u2adcore.levels.markups import read_markup_points, write_markups

REFERENCE_SIZE = (100, 100, 200)


@pytest.fixture
def reference() -> sitk.Image:
    """An image covering LPS x, y in [-50, 50), z in [-100, 100) mm."""
    img = sitk.Image(REFERENCE_SIZE, sitk.sitkUInt8)
    img.SetOrigin((-50.0, -50.0, -100.0))
    return img


def write_json(path, labels_positions, system="LPS", extra=None):
    points = [{"label": label, "position": list(pos)} for label, pos in labels_positions]
    points += extra or []
    path.write_text(json.dumps({"markups": [{"type": "Fiducial", "coordinateSystem": system, "controlPoints": points}]}))
    return path


BODIES = [("C2", (1.0, 2.0, 60.0)), ("C3", (1.5, 3.0, 42.0)), ("C4", (2.0, 4.0, 25.0))]


def test_lps_and_ras_files_give_the_same_points(tmp_path):
    lps = read_markup_points(write_json(tmp_path / "a.mrk.json", BODIES))
    ras = read_markup_points(write_json(tmp_path / "b.mrk.json", [(n, (-x, -y, z)) for n, (x, y, z) in BODIES], "RAS"))
    assert [p.label for p in lps] == [p.label for p in ras] == ["C2", "C3", "C4"]
    for a, b in zip(lps, ras):
        assert np.allclose(a.position, b.position)
    assert np.allclose(lps[1].position, BODIES[1][1])


def test_body_labels_read_as_bodies_and_undefined_points_are_skipped(tmp_path, reference):
    undefined = [{"label": "C6", "position": [0.0, 0.0, 0.0], "positionStatus": "undefined"}]
    path = write_json(tmp_path / "bodies.mrk.json", BODIES, extra=undefined)
    levels = read_levels(path, None, reference)
    assert levels.source == "markups:bodies" and list(levels.bodies) == ["C2", "C3", "C4"]
    assert levels.unknown_segments == ("C4-C5", "C5-C6", "C6-C7", "C7-T1")
    assert np.allclose(levels.bodies["C3"], BODIES[1][1])


def test_disc_labels_read_as_discs(tmp_path, reference):
    discs = [(name, (0.0, 0.0, z)) for name, z in (("C1-C2", 70.0), ("C2-C3", 50.0), ("C3-C4", 34.0), ("C4-C5", 16.0))]
    levels = read_levels(write_json(tmp_path / "discs.mrk.json", discs), "discs", reference)
    assert levels.source == "markups:discs+PAM50 prior" and list(levels.bodies) == ["C2", "C3", "C4", "C5"]
    assert levels.inferred == ("C5",)  # below the last marked disc, C4-C5
    assert levels.bodies["C3"][2] == pytest.approx(42.0)


@pytest.mark.parametrize(
    "labels, kind, message",
    [
        (["C2-C3", "C3", "C4-C5"], None, "mix discs .* and vertebral bodies"),
        (["F-1", "F-2"], None, "no control-point label names a disc .* found 'F-1', 'F-2'"),
        (["C2", "C3", "Cx"], None, r"labels \['Cx'\] name neither a disc"),
        (["C2", "C3", "C3"], None, "'C3' appears more than once"),
        (["C2", "C3", "C4"], "discs", "labels name bodies but levels kind 'discs' was asked for"),
    ],
)
def test_bad_markups_are_refused(tmp_path, reference, labels, kind, message):
    path = write_json(tmp_path / "bad.mrk.json", [(label, (0.0, 0.0, 60.0 - 15 * i)) for i, label in enumerate(labels)])
    with pytest.raises(InputError, match=message):
        read_levels(path, kind, reference)


def test_broken_files_are_refused(tmp_path, reference):
    (tmp_path / "x.mrk.json").write_text("{not json")
    with pytest.raises(InputError, match="x.mrk.json: not a valid markups JSON"):
        read_levels(tmp_path / "x.mrk.json", None, reference)
    write_json(tmp_path / "y.mrk.json", [("C2", (0.0, 0.0)), ("C3", (0.0, 0.0, 1.0))])
    with pytest.raises(InputError, match="control point 'C2' has no valid position"):
        read_levels(tmp_path / "y.mrk.json", None, reference)
    with pytest.raises(InputError, match="markups file not found"):
        read_levels(tmp_path / "missing.mrk.json", None, reference)


def test_written_markups_read_back_to_the_same_levels(tmp_path, reference):
    discs = {k: np.array([0.5 * k, -1.0, 90.0 - 17.0 * k]) for k in (2, 3, 4, 7, 8, 9)}
    levels = build_levels(discs, "discs")  # C4..C6 filled from the prior
    path = tmp_path / "out" / "levels.mrk.json"
    write_markups(levels, path)
    doc = json.loads(path.read_text())
    node = doc["markups"][0]
    assert node["type"] == "Fiducial" and node["coordinateSystem"] == "LPS" and doc["@schema"].endswith(".json#")
    assert [cp["label"] for cp in node["controlPoints"]] == list(levels.bodies)
    described = {cp["label"] for cp in node["controlPoints"] if "prior" in cp["description"]}
    assert described == set(levels.inferred) == {"C4", "C5", "C6"}
    again = read_levels(path, "bodies", reference)
    assert again.source == "markups:bodies" and list(again.bodies) == list(levels.bodies)
    for name in levels.bodies:
        assert np.allclose(again.bodies[name], levels.bodies[name])
    assert sorted(p.name for p in path.parent.iterdir()) == ["levels.mrk.json"]  # no temporary left behind
