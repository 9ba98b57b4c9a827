"""`u2ad pretrain` end to end on generated studies (and one real healthy study when present)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from u2adcore.cli.main import main
from u2adcore.data.manifest import ManifestEntry, write_manifest
from u2adcore.data.phantom import write_phantom_set
from u2adcore.training.checkpoint import load_checkpoint, read_checkpoint

FAST = ["--preset", "tiny", "--context-band", "1", "--epochs", "1", "--n-slices", "2", "--batch-size", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    return write_phantom_set(tmp_path_factory.mktemp("ph") / "set", n=2, seed=3, lesion_fraction=0.0)


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_pretrain_writes_a_loadable_checkpoint_with_its_provenance(phantoms, tmp_path, capsys):
    out = tmp_path / "model.pt"
    # A separate process, as the Slicer module runs it: the JSON-lines stream is its stdout.
    proc = subprocess.run([sys.executable, "-m", "u2adcore", "--progress", "jsonl", "pretrain", "--manifest", str(phantoms),
                           "--out", str(out), *FAST], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    events = _jsonl(proc.stdout)
    assert events[-1] == {"event": "done", "outputs": {"model": str(out), "loss_csv": str(tmp_path / "model_loss.csv"),
                                                        "loss_png": str(tmp_path / "model_loss.png")}}
    kinds = {e.get("kind") for e in events[:-1]}
    assert {"start", "step", "epoch", "checkpoint"} <= kinds
    loaded = load_checkpoint(out)
    assert loaded.config.model.preset == "tiny" and loaded.config.model.context_band == 1
    assert loaded.config.train.epochs == 1 and loaded.config.preprocess.n_slices == 2
    data = loaded.training_data
    assert data["studies"] == ["phantom_000", "phantom_001"] and data["n_studies"] == 2 and 2 <= data["n_slices"] <= 4
    assert data["sources"] == [{"kind": "manifest", "path": str(phantoms), "n_studies": 2,
                                "sha256": hashlib.sha256(phantoms.read_bytes()).hexdigest()}]
    assert loaded.meta["complete"] and (tmp_path / "model_loss.png").exists()

    # An existing output is refused; --resume of a finished run is a no-op; --ship rewrites it in float16.
    assert main(["--progress", "jsonl", "pretrain", "--manifest", str(phantoms), "--out", str(out), *FAST]) == 2
    assert "already exists; pass --resume" in _jsonl(capsys.readouterr().out)[-1]["message"]
    assert main(["--progress", "none", "pretrain", "--manifest", str(phantoms), "--out", str(out), "--resume", *FAST]) == 0
    assert read_checkpoint(out)["train_state"]["epoch"] == 1
    assert main(["--progress", "none", "pretrain", "--manifest", str(phantoms), "--out", str(out), "--overwrite", "--ship", *FAST]) == 0
    shipped = read_checkpoint(out)
    assert shipped["train_state"] is None and shipped["meta"]["weights_dtype"] == "float16"


def test_pretrain_settings_of_the_shipped_recipe_reach_the_checkpoint(phantoms, tmp_path):
    out = tmp_path / "normed.pt"
    assert main(["--progress", "none", "pretrain", "--manifest", str(phantoms), "--out", str(out), *FAST,
                 "--intensity-norm", "visible_cord", "--anchor-visible", "--mask-ratio", "0.5", "--noise-var", "0.0004"]) == 0
    cfg = load_checkpoint(out).config
    assert cfg.model.intensity_norm == "visible_cord" and cfg.model.anchor_visible and cfg.model.mask_ratio == 0.5 and cfg.train.noise_var == 0.0004
    profiled = tmp_path / "profiled.pt"  # the shipped model's recipe (scripts/build_default_model.sh)
    assert main(["--progress", "none", "pretrain", "--manifest", str(phantoms), "--out", str(profiled), *FAST,
                 "--intensity-norm", "visible_profile", "--loss-erode", "1"]) == 0
    cfg = load_checkpoint(profiled).config
    assert cfg.model.intensity_norm == "visible_profile" and cfg.model.loss_erode == 1 and not cfg.model.anchor_visible
    scanners = tmp_path / "scanners.pt"  # the scanner-difference augmentation and the patch size (docs/MODEL.md)
    assert main(["--progress", "none", "pretrain", "--manifest", str(phantoms), "--out", str(scanners), *FAST,
                 "--gamma", "0.7", "1.4", "--bias-field", "0.3", "--blur-sigma", "1", "--patch-size", "4"]) == 0
    loaded = load_checkpoint(scanners)
    assert loaded.config.train.gamma == (0.7, 1.4) and loaded.config.train.bias_field == 0.3 and loaded.config.train.blur_sigma == 1.0
    assert loaded.config.model.patch_size == 4 and loaded.model.cfg.patch_size == 4


def test_usage_errors(phantoms, tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "m.pt")]) == 2
    assert "give at least one --manifest or --spine-generic" in capsys.readouterr().err
    assert main(["pretrain", "--manifest", str(phantoms), "--out", str(tmp_path / "m.pt"), *FAST[:-2], "--device", "tpu"]) == 2
    assert "expected auto, cpu or cuda" in capsys.readouterr().err
    assert main(["pretrain", "--manifest", str(phantoms), "--out", str(tmp_path / "m.pt"), "--preset", "huge"]) == 2
    assert "unknown model preset 'huge'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--manifest", str(phantoms), "--out", str(tmp_path / "m.pt"), "--loss-erode", "-1"])
    assert "--loss-erode: must be >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--manifest", str(phantoms), "--out", str(tmp_path / "m.pt"), "--blur-sigma", "-0.5"])
    assert "--blur-sigma: expected 0 or more, got -0.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--manifest", str(phantoms), "--out", str(tmp_path / "m.pt"), "--gamma", "0", "1"])
    assert "--gamma: expected a positive number, got 0" in capsys.readouterr().err
    assert main(["pretrain", "--manifest", str(phantoms), "--out", str(tmp_path / "m.pt"), "--gamma", "1.2", "0.8"]) == 2
    assert "--gamma" in capsys.readouterr().err
    assert main(["pretrain", "--manifest", str(phantoms), "--manifest", str(phantoms), "--out", str(tmp_path / "m.pt"), *FAST]) == 2
    assert "study id 'phantom_000' is also listed" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_pretrain_on_a_spine_generic_folder(phantoms, tmp_path):
    """The BIDS layout of Spine Generic (built here from two phantom studies) is read directly."""
    root = tmp_path / "spine-generic"
    for i, sub in enumerate(("sub-01", "sub-02")):
        anat, labels = root / sub / "anat", root / "derivatives" / "labels" / sub / "anat"
        anat.mkdir(parents=True)
        labels.mkdir(parents=True)
        shutil.copy(phantoms.parent / f"phantom_{i:03d}_image.nii.gz", anat / f"{sub}_T2w.nii.gz")
        shutil.copy(phantoms.parent / f"phantom_{i:03d}_cord.nii.gz", labels / f"{sub}_T2w_seg-manual.nii.gz")
    out = tmp_path / "sg.pt"
    assert main(["--progress", "none", "pretrain", "--spine-generic", str(root), "--out", str(out), *FAST]) == 0
    data = load_checkpoint(out).training_data
    assert data["n_studies"] == 2 and len(data["studies"]) == 2
    assert [(s["kind"], s["path"], s["n_studies"]) for s in data["sources"]] == [("spine-generic", str(root), 2)]


@pytest.mark.realdata
def test_pretrain_on_a_real_healthy_study(errsm, tmp_path):
    subject = errsm["errsm_11"]
    manifest = tmp_path / "real.csv"
    write_manifest([ManifestEntry("errsm_11", subject["image"], subject["cord"])], manifest)
    out = tmp_path / "real.pt"
    assert main(["--progress", "none", "pretrain", "--manifest", str(manifest), "--out", str(out), *FAST]) == 0
    loaded = load_checkpoint(out)
    assert loaded.training_data["studies"] == ["errsm_11"] and loaded.training_data["n_slices"] == 2


def test_pretrain_under_torchrun_with_two_gloo_processes_matches_one_process(phantoms, tmp_path):
    """The CLI itself under torchrun: same global batch, same weights as a single process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    base = ["-m", "u2adcore", "--progress", "none", "pretrain", "--manifest", str(phantoms), *FAST]
    single = subprocess.run([sys.executable, *base, "--out", str(one)], capture_output=True, text=True, timeout=300, env=env)
    assert single.returncode == 0, single.stderr
    dist = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *base,
                           "--out", str(two)], capture_output=True, text=True, timeout=300, env=env)
    assert dist.returncode == 0, dist.stderr[-3000:]
    a, b = load_checkpoint(one).model.state_dict(), load_checkpoint(two).model.state_dict()
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-4, f"weights differ by {worst}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.pt", "one_loss.csv", "one_loss.png",
                                                          "two.pt", "two_loss.csv", "two_loss.png"]
    assert read_checkpoint(two)["meta"]["complete"] is True
