"""`u2ad detect` and `u2ad demo` as a user (or the Slicer module) runs them: files in, folders
and JSON lines out, and every bad input answered with a message naming the problem."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from u2adcore.cli.demo_cmd import DEMO_PHANTOM, DEMO_SEED
from u2adcore.cli.main import main
from u2adcore.config import SEGMENTS, PhantomConfig, Thresholds, U2ADConfig
from u2adcore.data.phantom import make_phantom, write_phantom
from u2adcore.model.edgemae import EdgeMAE
from u2adcore.model.presets import model_config
from u2adcore.training.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    paths = write_phantom(make_phantom(11, n_lesions=1, cfg=PhantomConfig(pixel_mm=1.0)), root / "study")
    torch.manual_seed(0)
    save_checkpoint(root / "tiny.pt", EdgeMAE(model_config("tiny")), U2ADConfig(), training_data={}, thresholds=Thresholds(patient=0.1))
    paths["ckpt"] = root / "tiny.pt"
    paths["root"] = root
    return paths


def _detect_args(setup, out, *extra):
    return ["detect", str(setup["image"]), "--cord", str(setup["cord"]), "--levels", str(setup["discs"]),
            "--levels-kind", "discs", "--model", str(setup["ckpt"]), "--mc", "2", "--out", str(out), *extra]


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_jsonl_mode_ends_with_done_and_the_output_paths(setup, tmp_path, capsys):
    assert main(["--progress", "jsonl", *_detect_args(setup, tmp_path / "out")]) == 0
    events = _jsonl(capsys.readouterr().out)  # every line is JSON
    done = events[-1]
    assert done["event"] == "done"
    assert {"anomaly_map", "candidates", "curve", "result", "report"} <= set(done["outputs"])
    for path in done["outputs"].values():
        assert (tmp_path / "out").samefile(Path(path).parent)
    doc = json.loads(open(done["outputs"]["result"]).read())
    assert doc["settings"]["inference"]["mc_samples"] == 2 and "patient_positive" in doc


def test_a_fresh_detect_process_draws_its_report_beside_the_model(setup, tmp_path):
    """A whole `u2ad detect` process (torch not yet imported) hands report.png to a forked child
    (scoring/report_process.py); the folder comes out complete and the child does not outlive it."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "U2ADCore"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "u2adcore", "--progress", "jsonl", *_detect_args(setup, tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert _jsonl(proc.stdout)[-1]["event"] == "done"
    png = sitk.ReadImage(str(tmp_path / "out" / "report.png"))
    assert png.GetWidth() > 900 and png.GetHeight() > 600
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["anomaly_map.nii.gz", "error_map.nii.gz", "eu_map.nii.gz", "reconstruction.nii.gz", "candidates.nii.gz",
         "curve.csv", "report.png", "result.json"])


def test_a_checkpoint_whose_preset_does_not_match_its_weights_is_reported(setup, tmp_path, capsys):
    payload = torch.load(setup["ckpt"], weights_only=True)
    payload["config"]["model"]["preset"] = "small"  # tiny weights claiming to be the small network
    bad = tmp_path / "mislabelled.pt"
    torch.save(payload, bad)
    args = _detect_args(setup, tmp_path / "out")
    args[args.index("--model") + 1] = str(bad)
    assert main(["--progress", "jsonl", *args]) == 2
    last = _jsonl(capsys.readouterr().out)[-1]
    assert last["event"] == "error"
    assert "mislabelled.pt" in last["message"] and "does not match its preset" in last["message"]
    assert not (tmp_path / "out").exists()


def test_a_missing_cord_file_is_reported_before_the_model_is_read(setup, tmp_path, capsys):
    args = _detect_args(setup, tmp_path / "out")
    args[args.index("--cord") + 1] = str(tmp_path / "no_cord.nii.gz")
    args[args.index("--model") + 1] = str(tmp_path / "no_model.pt")  # would fail too, if it were read first
    assert main(["--progress", "jsonl", *args]) == 2
    message = _jsonl(capsys.readouterr().out)[-1]["message"]
    assert "no_cord.nii.gz" in message and "no_model.pt" not in message
    assert not (tmp_path / "out").exists()


def test_levels_outside_the_image_are_refused_with_the_file_named(setup, tmp_path, capsys):
    discs = sitk.ReadImage(str(setup["discs"]))
    discs.SetOrigin(tuple(o + 400.0 for o in discs.GetOrigin()))  # the same labels, 40 cm away
    far = tmp_path / "far_discs.nii.gz"
    sitk.WriteImage(discs, str(far))
    args = _detect_args(setup, tmp_path / "out")
    args[args.index("--levels") + 1] = str(far)
    assert main(["--progress", "none", *args]) == 2
    err = capsys.readouterr().err
    assert "far_discs.nii.gz" in err and "outside the image" in err


@pytest.mark.parametrize("value", [0.0, 400.0])
def test_a_blank_image_is_refused_naming_the_file_and_nothing_is_written(setup, tmp_path, capsys, value):
    """A blank series or a failed export: refused before the model is read, no output folder."""
    image = sitk.ReadImage(str(setup["image"]))
    blank = sitk.Image(image.GetSize(), image.GetPixelID()) + value
    blank.CopyInformation(image)
    path = tmp_path / "blank_series.nii.gz"
    sitk.WriteImage(blank, str(path))
    args = _detect_args(setup, tmp_path / "out")
    args[1] = str(path)
    args[args.index("--model") + 1] = str(tmp_path / "never-loaded.pt")
    assert main(["--progress", "none", *args]) == 2
    err = capsys.readouterr().err
    assert "blank_series.nii.gz" in err and f"constant (every voxel is {value:g})" in err
    assert "never-loaded.pt" not in err
    assert not (tmp_path / "out").exists()


def test_a_blank_analysed_slice_is_refused_and_nothing_is_written(setup, tmp_path, capsys):
    """The volume has contrast but the analysed mid-sagittal slices were blanked (a failed export)."""
    image = sitk.ReadImage(str(setup["image"]))
    cord = sitk.GetArrayFromImage(sitk.ReadImage(str(setup["cord"])))
    arr = sitk.GetArrayFromImage(image)
    lr_axis = int(np.argmax(np.abs(np.asarray(image.GetDirection()).reshape(3, 3)[0])))  # voxel axis along L-R
    numpy_axis = 2 - lr_axis
    keep = [a for a in range(3) if a != numpy_axis]
    has_cord = np.flatnonzero(cord.sum(axis=tuple(keep)))
    index = [slice(None)] * 3
    index[numpy_axis] = slice(int(has_cord.min()), int(has_cord.max()) + 1)
    arr[tuple(index)] = 0
    out_img = sitk.GetImageFromArray(arr)
    out_img.CopyInformation(image)
    path = tmp_path / "half_blank.nii.gz"
    sitk.WriteImage(out_img, str(path))
    args = _detect_args(setup, tmp_path / "out")
    args[1] = str(path)
    assert main(["--progress", "none", *args]) == 2
    err = capsys.readouterr().err
    assert "half_blank.nii.gz" in err and "sagittal slice" in err and "constant (every voxel is 0)" in err
    assert not (tmp_path / "out").exists()


def test_a_foreign_output_folder_is_refused_before_any_work(setup, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "thesis.docx").write_text("x")
    missing_model = tmp_path / "never-loaded.pt"  # refusal comes first, so the model is never read
    args = _detect_args(setup, out)
    args[args.index("--model") + 1] = str(missing_model)
    assert main(["--progress", "none", *args]) == 2
    err = capsys.readouterr().err
    assert "thesis.docx" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.docx"]


def test_manifest_mode_writes_one_folder_per_study_and_a_summary(setup, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text(  # absolute paths are allowed in a manifest
        "id,image,cord,levels,levels_kind\n"
        f"a,{setup['image']},{setup['cord']},{setup['discs']},discs\n"
        f"b,{setup['image']},,,\n"  # no cord mask: segmented automatically
    )
    out = tmp_path / "batch"
    code = main(["--progress", "none", "detect", "--manifest", str(manifest), "--model", str(setup["ckpt"]), "--mc", "2", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["id"] for r in rows] == ["a", "b"]
    assert all((out / r["id"] / "result.json").is_file() for r in rows)
    a, b = rows
    doc_a = json.loads((out / "a" / "result.json").read_text())
    assert float(a["patient_score"]) == pytest.approx(doc_a["patient_score"], rel=1e-5)
    assert a["verdict"] == ("positive" if doc_a["patient_positive"] else "negative")
    assert a["top_segment"] == doc_a["top_segment"] and a["top_segment"] in SEGMENTS
    assert all(b[s] == "unknown" for s in SEGMENTS) and b["top_segment"] == ""  # no levels: never invented
    assert a["error"] == b["error"] == ""
    assert doc_a["cord_source"] == "given"
    assert json.loads((out / "b" / "result.json").read_text())["cord_source"] == "automatic"


def test_detect_without_cord_segments_it_and_says_so(setup, tmp_path, capsys):
    args = _detect_args(setup, tmp_path / "auto")
    i = args.index("--cord")
    del args[i : i + 2]
    assert main(["--progress", "none", *args]) == 0
    text = capsys.readouterr().out
    assert "segmenting the spinal cord automatically" in text and "[cord segmented automatically]" in text
    doc = json.loads((tmp_path / "auto" / "result.json").read_text())
    assert doc["cord_source"] == "automatic" and doc["inputs"]["cord"] is None
    seg = {s["name"]: s for s in doc["segments"]}
    assert all(k in seg["C4-C5"] for k in ("mscc", "min_ap_mm", "csa_mm2")) and seg["C4-C5"]["min_ap_mm"] > 3.0
    header = (tmp_path / "auto" / "curve.csv").read_text().splitlines()[0]
    assert header.endswith("ap_mm,csa_mm2")
    # A given mask wins.
    assert main(["--progress", "none", *_detect_args(setup, tmp_path / "given")]) == 0
    assert json.loads((tmp_path / "given" / "result.json").read_text())["cord_source"] == "given"


def test_image_is_needed(capsys):
    assert main(["--progress", "none", "detect"]) == 2
    assert "IMAGE" in capsys.readouterr().err


def test_demo_on_the_shipped_sample_with_the_shipped_model(tmp_path, capsys):
    """The README's main command end to end: the real sample with its pseudo-lesion, the shipped
    model, all six segments scored, and what it prints agrees with result.json."""
    from u2adcore.resources import sample_metadata

    out = tmp_path / "demo"
    assert main(["--progress", "none", "demo", "--out", str(out), "--mc", "2"]) == 0
    text = capsys.readouterr().out
    doc = json.loads((out / "detection" / "result.json").read_text())
    assert (out / "detection" / "report.png").is_file()
    assert sorted(p.name for p in (out / "study").iterdir()) == [f"demo_{r}.nii.gz" for r in ("cord", "discs", "image", "lesion")]
    assert "real, errsm_21 with a pseudo-lesion in C4-C5" in text and sample_metadata()["pseudo_lesion"]["segment"] == "C4-C5"
    assert "verdict:" in text and f"patient score:              {doc['patient_score']:.4g}" in text
    assert "lesion's segment(s):        C4-C5" in text
    assert f"top-scoring segment:        {doc['top_segment']}" in text
    assert all(s["known"] and s["score"] is not None for s in doc["segments"])
    assert doc["inputs"]["levels"].endswith("demo_discs.nii.gz")


def test_demo_writes_the_study_and_its_detection_and_names_the_lesion_segment(setup, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--progress", "none", "demo", "--study", "phantom", "--out", str(out), "--model", str(setup["ckpt"]), "--mc", "2"]) == 0
    text = capsys.readouterr().out
    assert (out / "detection" / "report.png").is_file() and (out / "study" / "demo_image.nii.gz").is_file()
    doc = json.loads((out / "detection" / "result.json").read_text())
    assert f"{doc['patient_score']:.4g}" in text
    expected = make_phantom(DEMO_SEED, n_lesions=1, cfg=DEMO_PHANTOM).lesion_segments
    assert expected and f"lesion's segment(s):        {', '.join(expected)}" in text
    assert f"top-scoring segment:        {doc['top_segment']}" in text
    lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "study" / "demo_lesion.nii.gz")))
    assert np.count_nonzero(lesion) > 0


def test_an_unknown_method_lists_the_available_ones(setup, tmp_path, capsys):
    assert main(["--progress", "none", *_detect_args(setup, tmp_path / "out", "--method", "nope")]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'; available: " in err and "u2ad" in err.split("available:")[1]
    assert not (tmp_path / "out").exists()


def test_comparison_methods_run_through_the_same_detect_command(setup, tmp_path, capsys):
    out = tmp_path / "z"
    args = _detect_args(setup, out)
    i = args.index("--model")
    del args[i:i + 2]
    assert main(["--progress", "none", *args, "--method", "zscore"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["method"]["method"] == "zscore"
    assert [s["name"] for s in result["segments"]] == list(SEGMENTS)
    amap = sitk.ReadImage(str(out / "anomaly_map.nii.gz"))
    image = sitk.ReadImage(str(setup["image"]))
    assert amap.GetSize() == image.GetSize() and np.allclose(amap.GetDirection(), image.GetDirection())
    assert sitk.GetArrayFromImage(amap).max() > 0


def test_a_trained_method_without_its_checkpoint_is_refused(setup, tmp_path, capsys):
    args = _detect_args(setup, tmp_path / "d")
    i = args.index("--model")
    del args[i:i + 2]
    assert main(["--progress", "jsonl", *args, "--method", "dae"]) == 2
    assert "--model" in _jsonl(capsys.readouterr().out)[-1]["message"]
    assert not (tmp_path / "d").exists()


def test_paper_scoring_and_candidates_are_settings_of_detect(setup, tmp_path):
    """--scoring paper reproduces METHOD.md §6 as published; --candidates paper only its candidate rule."""
    assert main(["--progress", "none", *_detect_args(setup, tmp_path / "paper", "--scoring", "paper")]) == 0
    paper = json.loads((tmp_path / "paper" / "result.json").read_text())
    assert paper["settings"]["scoring"]["residual"] == "paper" and paper["settings"]["scoring"]["patient_from"] == "cord"
    assert paper["n_candidates"] >= 1 and paper["candidates_rule"].startswith("paper")
    assert paper["settings"]["inference"]["mask_ratio"] is None  # the paper's inference: the model's own ratio
    assert main(["--progress", "none", *_detect_args(setup, tmp_path / "cand", "--candidates", "paper")]) == 0
    cand = json.loads((tmp_path / "cand" / "result.json").read_text())
    assert cand["settings"]["scoring"]["residual"] == "normative" and cand["settings"]["scoring"]["candidates"] == "paper"
    assert cand["n_candidates"] >= 1
    # the default: the tiny model carries no pixel threshold, so no candidate is outlined
    assert main(["--progress", "none", *_detect_args(setup, tmp_path / "default")]) == 0
    default = json.loads((tmp_path / "default" / "result.json").read_text())
    assert default["n_candidates"] == 0 and default["candidates_rule"].startswith("none")
    assert default["patient_score"] == pytest.approx(cand["patient_score"])  # candidates never change a score


def test_the_shipped_thresholds_give_no_verdict_under_another_scoring(tmp_path, capsys):
    """The shipped thresholds are healthy spreads of the default scoring: under the paper's
    |x - mu| (or another erosion) they would call every study negative, so detect withholds the
    verdict and says why, instead of applying them on the wrong scale."""
    from u2adcore.resources import sample_paths

    sample = sample_paths()
    base = ["detect", str(sample["image_lesion"]), "--cord", str(sample["cord"]), "--levels", str(sample["discs"]),
            "--levels-kind", "discs", "--mc", "2"]
    assert main(["--progress", "none", *base, "--out", str(tmp_path / "default")]) == 0
    default = json.loads((tmp_path / "default" / "result.json").read_text())
    assert isinstance(default["patient_positive"], bool) and "verdict_note" not in default
    assert all(isinstance(s["positive"], bool) for s in default["segments"])
    assert default["settings"]["inference"]["mask_ratio"] == 0.9
    for name, extra, changed in (("paper", ["--scoring", "paper"], "residual"), ("edge1", ["--erode-px", "1"], "erode_px"),
                                 ("model_ratio", ["--mask-ratio", "model"], "mask_ratio 0.9 (now None)")):
        capsys.readouterr()
        assert main(["--progress", "none", *base, *extra, "--out", str(tmp_path / name)]) == 0
        result = json.loads((tmp_path / name / "result.json").read_text())
        assert "patient_positive" not in result and all("positive" not in s for s in result["segments"])
        assert result["verdict_note"].startswith("no verdict") and changed in result["verdict_note"]
        assert result["thresholds"]["patient"] is None and result["thresholds"]["residual_spread"]
        assert "no verdict" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*base, "--mask-ratio", "1.5", "--out", str(tmp_path / "bad")])
    assert "--mask-ratio: expected a fraction strictly between 0 and 1 or 'model', got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    edge1 = json.loads((tmp_path / "edge1" / "result.json").read_text())
    assert edge1["n_candidates"] == 0 and edge1["candidates_rule"].startswith("none: no verdict")


@pytest.mark.parametrize("command", ["detect", "calibrate", "evaluate", "demo"])
def test_monte_carlo_count_below_one_is_refused_before_any_work(command, tmp_path, capsys):
    """--mc is parsed by one shared option (cli/options.py), so every command refuses K < 1 alike."""
    with pytest.raises(SystemExit) as exc:
        main([command, "--mc", "0", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "--mc: must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
