"""`u2ad calibrate` on real NIfTI phantoms with a tiny real EdgeMAE: thresholds land in a new
checkpoint, meet their targets on the calibration studies, and the input is never overwritten
by accident."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from u2adcore.cli.main import main
from u2adcore.config import U2ADConfig
from u2adcore.data.manifest import read_manifest
from u2adcore.evaluation.calibrate import manifest_truths, score_manifest
from u2adcore.methods.u2ad import U2ADMethod
from u2adcore.training.checkpoint import file_sha256, load_checkpoint

MC = 2


@pytest.fixture(scope="module")
def setup(phantoms_and_tiny_model):
    return phantoms_and_tiny_model("calib", 6, seed=3)


@pytest.fixture(scope="module")
def records(setup):
    """The studies' scores under the input model (thresholds do not change scores)."""
    _, manifest, model = setup
    cfg = U2ADConfig()
    cfg.inference.mc_samples, cfg.inference.device = MC, "cpu"
    entries = read_manifest(manifest)
    method = U2ADMethod(config=cfg, checkpoint=model)
    return score_manifest(entries, manifest_truths(entries, manifest, require_labels=True), method, cfg, task="calibrate")


def _calibrate(*extra) -> int:
    return main(["--progress", "none", "calibrate", "--mc", str(MC), "--device", "cpu", *map(str, extra)])


def test_labelled_calibration_meets_sensitivity_and_keeps_input(setup, records, capsys):
    root, manifest, model = setup
    before = file_sha256(model)
    out = root / "calibrated.pt"
    assert main(["--progress", "jsonl", "calibrate", "--mc", str(MC), "--device", "cpu",
                 "--manifest", str(manifest), "--model", str(model), "--out", str(out)]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done == {"event": "done", "outputs": {"model": str(out)}}
    assert file_sha256(model) == before and load_checkpoint(model).thresholds is None
    th = load_checkpoint(out).thresholds
    assert th.n_studies == 6 and "sensitivity>=0.9" in th.method and th.segment is not None
    cfg = U2ADConfig()
    cfg.inference.device = "cpu"
    assert U2ADMethod(config=cfg, checkpoint=out).thresholds == th  # detect will carry them
    positives = [r.patient_score for r in records if r.label]
    assert np.mean(np.array(positives) > th.patient) >= 0.9
    # the weights are the input's, untouched
    a, b = load_checkpoint(model).model.state_dict(), load_checkpoint(out).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_normal_only_calibration_meets_fpr(setup, records):
    root, manifest, model = setup
    unlabelled = root / "set" / "unlabelled.csv"
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(unlabelled, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "image", "cord", "levels", "levels_kind"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    out = root / "normal.pt"
    assert _calibrate("--manifest", unlabelled, "--model", model, "--out", out, "--fpr", "0.2") == 0
    th = load_checkpoint(out).thresholds
    assert th.method.startswith("normal-only") and "0.2" in th.method
    assert th.pixel is not None and len(th.residual_spread) == 6 and all(v > 0 for v in th.residual_spread)
    # scored as detect scores with the calibrated model (its stored spread sets the units)
    cfg = U2ADConfig()
    cfg.inference.mc_samples, cfg.inference.device = MC, "cpu"
    entries = read_manifest(unlabelled)
    rescored = score_manifest(entries, manifest_truths(entries, unlabelled, require_labels=False),
                              U2ADMethod(config=cfg, checkpoint=out), cfg, task="check")
    assert np.mean([r.patient_score > th.patient for r in rescored]) <= 0.2
    assert th.calibration["n_studies"] == len(entries) and th.calibration["pixel_fpr"] == 0.01
    # thresholds for another scoring: calibrate with the settings detect will run with
    profiled = root / "profile.pt"
    assert _calibrate("--manifest", unlabelled, "--model", model, "--out", profiled, "--residual-centre", "profile",
                      "--erode-px", "0") == 0
    cal = load_checkpoint(profiled).thresholds.calibration["scoring"]
    assert cal["residual_centre"] == "profile" and cal["erode_px"] == 0 and cal["mask_ratio"] == 0.9


def test_refuses_to_overwrite_without_asking(setup, capsys):
    root, manifest, model = setup
    copy = root / "copy.pt"
    copy.write_bytes(model.read_bytes())
    assert _calibrate("--manifest", manifest, "--model", copy, "--out", copy) == 2
    assert "--out is the input checkpoint; pass --overwrite" in capsys.readouterr().err
    assert load_checkpoint(copy).thresholds is None
    existing = root / "existing.pt"
    existing.write_bytes(b"not ours")
    assert _calibrate("--manifest", manifest, "--model", copy, "--out", existing) == 2
    assert "already exists" in capsys.readouterr().err and existing.read_bytes() == b"not ours"
    assert _calibrate("--manifest", manifest, "--model", copy, "--out", copy, "--overwrite") == 0
    assert load_checkpoint(copy).thresholds.patient is not None


def test_mixed_labels_and_bad_targets_are_input_errors(setup, capsys):
    root, manifest, model = setup
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[1]["label"], rows[1]["segments"] = "", ""
    mixed = root / "set" / "mixed.csv"
    with open(mixed, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert _calibrate("--manifest", mixed, "--model", model, "--out", root / "x.pt") == 2
    assert f"{mixed}: 1 studies have no 'label' (0/1): {rows[1]['id']}" in capsys.readouterr().err
    assert _calibrate("--manifest", manifest, "--model", model, "--out", root / "x.pt", "--sensitivity", "1.5") == 2
    assert "--sensitivity must be in (0, 1]" in capsys.readouterr().err
    assert not (root / "x.pt").exists()
