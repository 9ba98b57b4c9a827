"""The worker protocol: progress lines parse, errors read well, cancel stops a real adaptation cleanly."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import pytest
import slicer

from u2adcore.progress import ProgressEvent
from U2ADSlicerLib import mrml, pipeline
from U2ADSlicerLib.parameters import Inputs, Settings
from U2ADSlicerLib.worker import WorkerProcess, WorkerSettings, describe_progress, detect_command, parse_line
from u2adslicer_testdata import write_study


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


@pytest.mark.realdata
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


@pytest.mark.realdata
def test_cancel_stops_a_running_adaptation_and_leaves_no_outputs(tmp_path, scene, errsm, tiny_model):
    subject = errsm["errsm_11"]
    manifest = tmp_path / "studies.csv"
    manifest.write_text(f"id,image,cord,levels,levels_kind\nerrsm_11,{subject['image']},{subject['cord']},{subject['landmarks']},bodies\n")
    destination = tmp_path / "models" / "adapted.pt"
    settings = Settings(model_path=str(tiny_model), device="cpu", adapt_epochs=500)
    job = pipeline.start_adaptation(scene, manifest, destination, settings, python=sys.executable)
    try:
        _poll_until_progress(job, limit_s=90)
        assert job.worker.last_progress is not None, f"no progress before the limit: {job.worker.result}"
        assert not job.worker.finished
        start = time.monotonic()
        job.cancel()
        assert time.monotonic() - start < 6.0
    finally:
        job.cancel()  # a no-op after the cancel above; cleans up if an assertion failed first
    assert job.worker.result.status == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(job.worker.pid, 0)
    assert not job.workdir.exists()
    assert not destination.exists() and not (destination.parent.exists() and any(destination.parent.iterdir()))


def test_a_worker_error_names_the_node_not_the_temporary_file(scene, tmp_path, tiny_model):
    paths = write_study(tmp_path / "study")
    volume = mrml.load_volume(scene, paths["image"], "patient T2")
    cord = mrml.load_volume(scene, paths["cord"], "empty cord", labelmap=True)
    slicer.util.arrayFromVolume(cord)[:] = 0
    slicer.util.arrayFromVolumeModified(cord)
    settings = Settings(model_path=str(tiny_model), device="cpu", mc_samples=1)
    with pytest.raises(pipeline.WorkerFailed) as failure:
        pipeline.process(scene, Inputs(volume, cord), settings, python=sys.executable, timeout_s=120)
    message = str(failure.value)
    assert message.startswith("'empty cord': ") and "empty" in message[len("'empty cord': "):]
    assert "u2ad-" not in message  # no temporary path left in what the panel shows


@pytest.mark.realdata
def test_adaptation_on_loaded_studies_saves_the_model_where_asked(scene, tmp_path, errsm, tiny_model):
    from u2adcore.training.checkpoint import load_checkpoint
    from U2ADSlicerLib.logic import U2ADLogic
    from U2ADSlicerLib.parameters import StudyNodes

    subject = errsm["errsm_11"]
    volume = mrml.load_volume(scene, subject["image"], "errsm_11")
    cord = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "errsm_11 cord")  # the usual Slicer input
    labels = mrml.load_volume(scene, subject["cord"], "cord labels", labelmap=True)
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, cord)
    destination = tmp_path / "my models" / "clinic.pt"
    progress = []

    saved = U2ADLogic(scene).adapt([StudyNodes(volume, cord)], destination, tiny_model, "cpu", epochs=1,
                                   on_message=progress.append, python=sys.executable, timeout_s=300)

    assert saved == destination and load_checkpoint(destination).config.model.preset == "tiny"
    assert (tmp_path / "my models" / "clinic_loss.csv").is_file()  # files named after the model follow it
    assert any(m.event == "progress" and m.progress.task == "adapt" for m in progress)
    assert not [p for p in destination.parent.iterdir() if p.name.startswith(".")]
