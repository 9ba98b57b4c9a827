"""`u2ad inspect` through the real CLI entry point."""
from __future__ import annotations

import json

import pytest

from u2adcore.cli.main import main


@pytest.mark.realdata
def test_inspect_prints_geometry_slices_and_levels(errsm, capsys):
    files = errsm["errsm_11"]
    rc = main(
        ["--progress", "none", "inspect", str(files["image"]), "--cord", str(files["cord"]),
         "--levels", str(files["landmarks"]), "--levels-kind", "bodies", "--n-slices", "3"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "orientation:    PSR" in out
    assert "384 x 216 x 52 voxels" in out and "1 x 1 x 1 mm" in out
    assert "cord extent:    215.0 mm S-I" in out  # the manual mask covers all 216 S-I voxels
    assert "slices:         21, 22, 23" in out
    assert "levels:         bodies+PAM50 prior" in out
    assert "bodies:         C2, C3, C4, C5, C6, C7, T1, T2 (inferred from the PAM50 prior: C3, C4, C5, C6, C7, T1)" in out
    assert "segments known: C2-C3, C3-C4, C4-C5, C5-C6, C6-C7, C7-T1" in out


@pytest.mark.realdata
def test_inspect_jsonl_summary(realspine, capsys):
    image = realspine / "sct_testing_data/t1/t1w.nii.gz"
    cord = realspine / "sct_testing_data/t1/t1w_seg-manual.nii.gz"
    assert main(["--progress", "jsonl", "inspect", str(image), "--cord", str(cord), "--slices", "20", "21"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["event"] == "done" and last["outputs"] == {}
    summary = last["summary"]
    assert summary["orientation"] == "RAS" and summary["size"] == [42, 76, 77]
    assert summary["selected_slices"] == [20, 21] and summary["n_sagittal_slices"] == 42
    assert "levels" not in summary


def test_inspect_reports_bad_input_without_traceback(tmp_path, capsys):
    text = tmp_path / "scan.nii.gz"
    text.write_text("not an image")
    rc = main(["--progress", "none", "inspect", str(text), "--cord", str(text)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"u2ad: {text}: cannot read the image") and "Traceback" not in err
