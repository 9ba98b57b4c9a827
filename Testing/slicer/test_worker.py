"""The worker protocol: progress lines parse, errors read well, cancel stops a real adaptation cleanly."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import pytest

from u2adcore.progress import ProgressEvent
from U2ADSlicerLib import pipeline
from U2ADSlicerLib.parameters import Settings
from U2ADSlicerLib.worker import WorkerProcess, WorkerSettings, describe_progress, detect_command, parse_line


def test_progress_done_error_and_cancelled_lines_parse():
    event = ProgressEvent("epoch", task="adapt", stage="EU-guided", epoch=3, epochs=10, loss=0.0125, eta_s=65.0, fraction=0.4)
    parsed = parse_line(event.to_json() + "\n")
    assert parsed.event == "progress" and parsed.progress == event
    assert describe_progress(parsed.progress) == "adapt EU-guided · epoch 4/10 · loss 0.01250 · ETA 1:05"

    newer = json.dumps({"event": "progress", "kind": "step", "step": 2, "steps": 5, "gpu_memory_mb": 812})
    assert parse_line(newer).progress == ProgressEvent("step", step=2, steps=5)  # unknown fields ignored

    done = parse_line(json.dumps({"event": "done", "outputs": {"result": "/x/result.json"}}))
    assert (done.event, done.outputs) == ("done", {"result": "/x/result.json"})
    error = parse_line(json.dumps({"event": "error", "message": "cord.nii.gz: file not found"}))
    assert (error.event, error.message) == ("error", "cord.nii.gz: file not found")
    assert parse_line(json.dumps({"event": "cancelled", "message": "interrupted"})).event == "cancelled"
    assert parse_line("UserWarning: something chatty\n") == dataclasses.replace(parse_line("x"), message="UserWarning: something chatty")
    assert parse_line("   \n") is None


def test_a_missing_cord_file_gives_a_readable_error(tmp_path, errsm, tiny_model):
    missing = tmp_path / "no_such_cord.nii.gz"
    argv = detect_command(sys.executable, errsm["errsm_11"]["image"], missing, tmp_path / "out", model=tiny_model, device="cpu", mc_samples=1)
    result = WorkerProcess(argv).wait(timeout_s=120)
    assert result.status == "error" and result.returncode == 2
    assert str(missing) in result.message and "not found" in result.message
    assert "Traceback" not in result.message
    assert not (tmp_path / "out").exists()


def test_a_crash_without_a_json_error_still_explains_itself():
    code = "import sys; print('warming up', flush=True); sys.stderr.write('Traceback ...\\nRuntimeError: boom\\n'); sys.exit(3)"
    worker = WorkerProcess([sys.executable, "-c", code])
    seen = []
    result = worker.wait(seen.append, timeout_s=60)
    assert [m.message for m in seen if m.event == "log"] == ["warming up"]
    assert result.status == "error"
    assert "exit code 3" in result.message and result.message.endswith("RuntimeError: boom")


def test_a_run_past_its_time_limit_is_cancelled():
    worker = WorkerProcess([sys.executable, "-c", "import time; time.sleep(60)"], settings=WorkerSettings(cancel_grace_s=2.0))
    start = time.monotonic()
    result = worker.wait(timeout_s=0.5)
    assert result.status == "cancelled" and time.monotonic() - start < 5.0
    assert result.message == "stopped: no result within the time limit of 0.5 s"


def _poll_until_progress(job, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while job.worker.last_progress is None and not job.worker.finished and time.monotonic() < deadline:
        job.worker.poll()
        time.sleep(0.05)


def test_cancel_stops_a_running_adaptation_and_leaves_no_outputs(tmp_path, scene, errsm, tiny_model):
    subject = errsm["errsm_11"]
    manifest = tmp_path / "studies.csv"
    manifest.write_text(f"id,image,cord,levels,levels_kind\nerrsm_11,{subject['image']},{subject['cord']},{subject['landmarks']},bodies\n")
    destination = tmp_path / "models" / "adapted.pt"
    settings = Settings(model_path=str(tiny_model), device="cpu", adapt_epochs=500)
    job = pipeline.start_adaptation(scene, manifest, destination, settings, python=sys.executable)

    _poll_until_progress(job, limit_s=90)
    assert job.worker.last_progress is not None, f"no progress before the limit: {job.worker.result}"
    assert not job.worker.finished
    start = time.monotonic()
    job.cancel()
    assert time.monotonic() - start < 6.0
    assert job.worker.result.status == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(job.worker.pid, 0)
    assert not job.workdir.exists()
    assert not destination.exists() and not (destination.parent.exists() and any(destination.parent.iterdir()))
