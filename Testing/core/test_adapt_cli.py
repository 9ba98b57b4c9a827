"""`u2ad adapt` end to end on phantom studies with a tiny pretrained model."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from u2adcore.cli.main import main
from u2adcore.config import PreprocessConfig, U2ADConfig
from u2adcore.data.phantom import write_phantom_set
from u2adcore.model.edgemae import EdgeMAE
from u2adcore.model.presets import model_config
from u2adcore.training.checkpoint import load_checkpoint, save_checkpoint
from u2adcore.uncertainty.adapt import STAGE_EU, STAGE_EU_AU

FAST = ["--schedule", "cpu", "--epochs", "2", "--stage2-start", "1", "--refresh-every", "1", "--mc-samples", "1",
        "--n-slices", "1", "--batch-size", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two healthy phantom studies and a tiny pretrained model (256 x 256 like the real one)."""
    root = tmp_path_factory.mktemp("cli")
    manifest = write_phantom_set(root / "target", 2, seed=3, lesion_fraction=0.0)
    torch.manual_seed(0)
    model = EdgeMAE(model_config("tiny", context_band=2))
    pretrained = root / "pre.pt"
    save_checkpoint(pretrained, model, U2ADConfig(preprocess=PreprocessConfig(n_slices=30), model=model.cfg),
                    training_data={"n_slices": 0})
    return manifest, pretrained


def _jsonl(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_adapt_writes_an_adapted_model_with_both_stages_and_refreshes(inputs, tmp_path, capsys):
    manifest, pretrained = inputs
    out = tmp_path / "adapted.pt"
    rc = main(["--progress", "jsonl", "adapt", "--manifest", str(manifest), "--model", str(pretrained),
               "--out", str(out), *FAST])
    assert rc == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["event"] == "done"
    outputs = done["outputs"]
    assert outputs["model"] == str(out) and {"loss_csv", "loss_png", "uncertainty"} <= set(outputs)
    assert all(Path(p).is_file() for p in outputs.values())
    with open(outputs["loss_csv"]) as f:
        assert [row["stage"] for row in csv.DictReader(f)] == [STAGE_EU, STAGE_EU_AU]
    adapted = load_checkpoint(out)
    assert adapted.config.adapt.schedule == "cpu" and adapted.config.adapt.cpu_epochs == 2
    assert adapted.config.adapt.epochs == 2 and adapted.config.adapt.stage2_start == 1
    assert adapted.meta["task"] == "adapt" and adapted.meta["complete"]
    assert [r["epoch"] for r in adapted.meta["refreshes"]] == [0, 1]
    assert adapted.training_data["n_slices"] == 2 and adapted.training_data["sources"][0]["path"] == str(manifest)
    assert adapted.config.preprocess.n_slices == 30  # the model's own preprocessing is kept
    before = load_checkpoint(pretrained).model.state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in adapted.model.state_dict().items())


def test_existing_output_is_refused_without_resume_or_overwrite(inputs, tmp_path, capsys):
    manifest, pretrained = inputs
    out = tmp_path / "adapted.pt"
    out.write_bytes(b"not mine")
    rc = main(["--progress", "jsonl", "adapt", "--manifest", str(manifest), "--model", str(pretrained),
               "--out", str(out), *FAST])
    assert rc == 2
    assert "already exists; pass --resume" in _jsonl(capsys)[-1]["message"]
    assert out.read_bytes() == b"not mine"


def test_missing_model_and_bad_settings_are_reported(inputs, tmp_path, capsys):
    manifest, pretrained = inputs
    rc = main(["--progress", "jsonl", "adapt", "--manifest", str(manifest), "--model", str(tmp_path / "none.pt"),
               "--out", str(tmp_path / "a.pt"), *FAST])
    assert rc == 2 and "none.pt: no such model file" in _jsonl(capsys)[-1]["message"]
    rc = main(["--progress", "jsonl", "adapt", "--manifest", str(manifest), "--model", str(pretrained),
               "--out", str(tmp_path / "a.pt"), *FAST, "--stage2-start", "5"])
    assert rc == 2 and "stage2_start 5 must lie in [0, epochs=2)" in _jsonl(capsys)[-1]["message"]
    assert not (tmp_path / "a.pt").exists()


def test_without_model_adaptation_starts_from_the_shipped_model(inputs, tmp_path):
    from u2adcore.resources import default_model_path
    from u2adcore.training.checkpoint import file_sha256

    manifest, _ = inputs
    out = tmp_path / "adapted.pt"
    one_epoch = [*FAST, "--epochs", "1", "--stage2-start", "0"]  # later flags win
    assert main(["--progress", "none", "adapt", "--manifest", str(manifest), "--out", str(out), *one_epoch]) == 0
    adapted = load_checkpoint(out)
    shipped = load_checkpoint(default_model_path())
    assert adapted.meta["pretrained"] == {"path": str(default_model_path()), "sha256": file_sha256(default_model_path())}
    assert adapted.config.model == shipped.config.model  # the shipped architecture, context band included
