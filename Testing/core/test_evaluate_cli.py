"""`u2ad evaluate` end to end on real NIfTI phantoms with a tiny real EdgeMAE: the 5-fold files,
their consistency, and the --predictions path agreeing with scoring in place."""
from __future__ import annotations

import csv
import json

import pytest

from u2adcore.cli.main import main

COMMON = ["--mc", "2", "--device", "cpu"]
TABLE1 = "| method | patient acc | patient F1 | patient spec | segment F1 | segment recall | segment spec |"


@pytest.fixture(scope="module")
def setup(phantoms_and_tiny_model):
    return phantoms_and_tiny_model("evaluate", 10, seed=11)


@pytest.fixture(scope="module")
def evaluated(setup):
    root, manifest, model = setup
    out = root / "eval"
    assert main(["--progress", "none", "evaluate", "--manifest", str(manifest), "--model", str(model), "--out", str(out), *COMMON]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_five_folds_cover_every_study_once(evaluated, setup):
    out, doc = evaluated
    _, manifest, _ = setup
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert doc["n_studies"] == 10 and doc["n_positive"] == 5 and len(doc["folds"]) == 5
    tested = sorted(i for f in doc["folds"] for i in f["test_ids"])
    assert tested == sorted(r["id"] for r in rows)
    for f in doc["folds"]:  # stratified: each test fold holds one positive and one normal study
        labels = [s["label"] for s in doc["studies"] if s["id"] in f["test_ids"]]
        assert sorted(labels) == [False, True]
    by_id = {s["id"]: s for s in doc["studies"]}
    for r in rows:
        assert by_id[r["id"]]["label"] == (r["label"] == "1")
        assert by_id[r["id"]]["segments"] == sorted(filter(None, r["segments"].split(";")))


def test_summary_csv_and_table_agree(evaluated):
    out, doc = evaluated
    summary = doc["summary"]
    for key in ("patient_accuracy", "patient_f1", "patient_specificity", "segment_f1", "segment_recall",
                "segment_specificity", "pixel_auroc", "pixel_auprc", "pixel_dice", "ssim", "psnr", "mse", "eu"):
        assert key in summary, key
    for key in ("patient_accuracy", "pixel_auroc", "ssim"):
        per_fold = [f["metrics"][key] for f in doc["folds"]]
        assert summary[key]["mean"] == pytest.approx(sum(per_fold) / 5)
        assert 0.0 <= summary[key]["mean"] <= 1.0
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["fold"] for r in rows] == ["0", "1", "2", "3", "4", "mean", "std"]
    assert float(rows[5]["patient_f1"]) == pytest.approx(summary["patient_f1"]["mean"], rel=1e-5)
    table = (out / "table.md").read_text().splitlines()
    assert table[0].startswith(TABLE1) and table[2].startswith("| u2ad | ")
    m = summary["patient_accuracy"]
    assert f"{m['mean']:.3f} ± {m['std']:.3f}" in table[2]
    for f in doc["folds"]:
        assert f["thresholds"]["n_studies"] == 8  # chosen on the other four folds


def test_predictions_folder_gives_the_same_scores(setup, evaluated, capsys):
    root, manifest, model = setup
    _, doc = evaluated
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    subset = [r for r in rows if r["label"] == "1"][:2] + [r for r in rows if r["label"] == "0"][:2]
    small = root / "set" / "small.csv"
    with open(small, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(subset)
    preds = root / "preds"
    assert main(["--progress", "none", "detect", "--manifest", str(small), "--model", str(model), "--out", str(preds), *COMMON]) == 0
    out = root / "eval_preds"
    capsys.readouterr()
    assert main(["--progress", "jsonl", "evaluate", "--manifest", str(small), "--predictions", str(preds), "--out", str(out),
                 "--folds", "2"]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done["event"] == "done" and done["outputs"]["table"] == str(out / "table.md")
    got = json.loads((out / "metrics.json").read_text())
    before = {s["id"]: s for s in doc["studies"]}
    for s in got["studies"]:
        assert s["patient_score"] == pytest.approx(before[s["id"]]["patient_score"], rel=1e-6)
        assert s["segment_scores"] == pytest.approx(before[s["id"]]["segment_scores"], rel=1e-6)
    assert "pixel_auroc" in got["summary"] and "ssim" not in got["summary"]


def test_argument_and_manifest_errors(setup, capsys, tmp_path):
    root, manifest, model = setup
    base = ["--progress", "none", "evaluate", "--manifest", str(manifest), "--out", str(tmp_path / "o")]
    assert main([*base, "--predictions", str(root), "--model", str(model)]) == 2
    assert "give either --predictions or --model/--method, not both" in capsys.readouterr().err
    assert main([*base, "--predictions", str(tmp_path)]) == 2
    assert "no detection result for study" in capsys.readouterr().err
    assert main([*base, "--folds", "1"]) == 2
    assert "--folds must be at least 2" in capsys.readouterr().err
    assert main([*base, "--method", "no-such-method"]) == 2
    assert "unknown method 'no-such-method'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_comparison_method_is_evaluated_by_name(setup):
    """Z-scoring needs no model; the phantom lesions are clear intensity outliers, so the
    pixel AUROC inside the cord must be well above chance."""
    root, manifest, _ = setup
    out = root / "eval_zscore"
    assert main(["--progress", "none", "evaluate", "--manifest", str(manifest), "--method", "zscore", "--out", str(out), *COMMON]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["n_studies"] == 10 and len(doc["folds"]) == 5
    assert doc["summary"]["pixel_auroc"]["mean"] > 0.7
