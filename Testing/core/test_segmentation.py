"""The built-in cord segmentation: the shipped model on a real subject it never saw, any
orientation, output on the input grid, the CLI contract (segment-cord, detect without --cord),
and a real (tiny) training run."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from u2adcore.cli.main import main
from u2adcore.config import CordSegConfig, PhantomConfig
from u2adcore.data.phantom import make_phantom, write_phantom
from u2adcore.errors import CheckpointError
from u2adcore.segmentation import load_segmenter, segment_cord
from u2adcore.segmentation.grid import mask_to_working, to_working
from u2adcore.segmentation.metrics import compare, dice, mean_surface_distance
from u2adcore.segmentation.network import load_cordseg, save_cordseg
from u2adcore.segmentation.train import TrainVolume, train_cordseg
from u2adcore.volume.orientation import same_grid

HELD_OUT = "errsm_24"  # scripts/build_cordseg_model.sh holds it out of the shipped weights
DICE_FLOOR = 0.75


@pytest.fixture(scope="module")
def segmenter():
    return load_segmenter()


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cordseg")
    return write_phantom(make_phantom(5, cfg=PhantomConfig(n_slices=15, slice_mm=1.0, pixel_mm=1.0)), root / "study")


def test_the_shipped_model_held_out_the_test_subject(segmenter):
    assert HELD_OUT in segmenter.training["held_out"]
    assert HELD_OUT not in segmenter.training["subjects"]


def test_dice_on_a_held_out_real_subject(segmenter, errsm):
    f = errsm[HELD_OUT]
    image, manual = sitk.ReadImage(str(f["image"])), sitk.ReadImage(str(f["cord"]))
    auto = segment_cord(image, model=segmenter)
    assert same_grid(auto, image) and auto.GetPixelID() == sitk.sitkUInt8
    m = compare(auto, manual)
    assert m["dice"] > DICE_FLOOR, m
    assert m["msd_mm"] < 2.0, m


def test_any_orientation_gives_the_same_mask(segmenter, phantom_files):
    image = sitk.ReadImage(str(phantom_files["image"]))
    a = segment_cord(image, model=segmenter)
    lps = sitk.DICOMOrient(image, "LPS")
    b = segment_cord(lps, model=segmenter)
    assert same_grid(b, lps)
    back = sitk.DICOMOrient(b, "PSR")
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(a))
    assert compare(a, sitk.ReadImage(str(phantom_files["cord"])))["dice"] > 0.6


def test_anisotropic_input_comes_back_on_its_own_grid(segmenter, phantom_files):
    image = sitk.ReadImage(str(phantom_files["image"]))
    thick = sitk.Resample(image, [image.GetSize()[0] // 2, image.GetSize()[1] // 2, image.GetSize()[2] // 3], sitk.Transform(),
                          sitk.sitkLinear, image.GetOrigin(), [s * k for s, k in zip(image.GetSpacing(), (2, 2, 3))], image.GetDirection())
    mask = segment_cord(thick, model=segmenter)
    assert same_grid(mask, thick) and np.any(sitk.GetArrayViewFromImage(mask))


def test_working_grid_round_trip_keeps_the_mask(phantom_files):
    image, cord = sitk.ReadImage(str(phantom_files["image"])), sitk.ReadImage(str(phantom_files["cord"]))
    work = to_working(image, 1.0, (0.5, 99.5))
    assert work.array.min() >= 0 and work.array.max() <= 1
    m = mask_to_working(cord, work.grid)
    assert abs(int(m.sum()) - int(sitk.GetArrayViewFromImage(cord).sum())) < 0.05 * m.sum()


def test_metrics():
    a = np.zeros((20, 20, 20), bool)
    a[5:15, 5:15, 5:15] = True
    b = np.roll(a, 1, axis=0)
    assert dice(a, a) == 1.0 and dice(a, b) == pytest.approx(0.9)
    assert mean_surface_distance(a, a, (1, 1, 1)) == 0.0
    assert 0 < mean_surface_distance(a, b, (2.0, 1, 1)) < 2.0


def test_training_is_real_and_seeded(tmp_path, phantom_files):
    image, cord = sitk.ReadImage(str(phantom_files["image"])), sitk.ReadImage(str(phantom_files["cord"]))
    work = to_working(image, 1.0, (0.5, 99.5))
    vol = TrainVolume("p", work.array, mask_to_working(cord, work.grid))
    cfg = dataclasses.replace(CordSegConfig(), patch=32, batch=2, steps=4)
    net1, losses = train_cordseg([vol], cfg)
    net2, _ = train_cordseg([vol], cfg)
    assert len(losses) == 4 and all(np.isfinite(losses))
    for p1, p2 in zip(net1.state_dict().values(), net2.state_dict().values()):
        torch.testing.assert_close(p1, p2)
    save_cordseg(tmp_path / "m.pt", net1, cfg, {"held_out": []})
    net3, cfg3, training = load_cordseg(tmp_path / "m.pt")
    assert cfg3 == cfg and training == {"held_out": []}
    assert (tmp_path / "m.pt").stat().st_size < 500_000  # float16


def test_a_foreign_checkpoint_is_refused(tmp_path):
    torch.save({"format": "something-else"}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a cord segmentation model"):
        load_cordseg(tmp_path / "x.pt")


# -- the command line: the contract the Slicer module codes against -------------------------------


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_segment_cord_cli_jsonl_contract(phantom_files, tmp_path, capsys):
    out = tmp_path / "cord.nii.gz"
    assert main(["--progress", "jsonl", "segment-cord", str(phantom_files["image"]), "--out", str(out), "--device", "cpu"]) == 0
    events = _jsonl(capsys.readouterr().out)
    assert events[-1]["event"] == "done" and events[-1]["outputs"] == {"cord": str(out)}
    assert all(e["event"] == "progress" for e in events[:-1]) and any(e.get("kind") == "step" for e in events)
    mask = sitk.ReadImage(str(out))
    assert same_grid(mask, sitk.ReadImage(str(phantom_files["image"]))) and set(np.unique(sitk.GetArrayViewFromImage(mask))) == {0, 1}
    # An existing output is kept unless --overwrite; the input is never the output.
    assert main(["--progress", "jsonl", "segment-cord", str(phantom_files["image"]), "--out", str(out)]) == 2
    assert "--overwrite" in _jsonl(capsys.readouterr().out)[-1]["message"]
    assert main(["--progress", "none", "segment-cord", str(phantom_files["image"]), "--out", str(out), "--overwrite"]) == 0
    assert main(["--progress", "none", "segment-cord", str(phantom_files["image"]), "--out", str(phantom_files["image"]), "--overwrite"]) == 2


def test_segment_cord_cli_names_a_missing_model(phantom_files, tmp_path, capsys):
    assert main(["--progress", "none", "segment-cord", str(phantom_files["image"]), "--out", str(tmp_path / "c.nii.gz"),
                 "--model", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err
