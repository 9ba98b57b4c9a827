"""Stopping a worker stops everything it started: inside Slicer the worker runs under the
PythonSlicer launcher, whose child does the work (issue 12, defect 1)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from U2ADSlicerLib import dependencies
from U2ADSlicerLib.worker import WorkerProcess, WorkerSettings

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="checks process state through /proc and signals (POSIX)")

# A launcher like PythonSlicer: starts the real interpreter as its child and waits for it. The
# child prints its pid and keeps the pipes open, as a working detection would.
LAUNCHER = r"""
import subprocess, sys
print("launcher", __import__("os").getpid(), flush=True)
child = subprocess.Popen([sys.executable, "-c", "import os, time; print('child', os.getpid(), flush=True); time.sleep(60)"])
child.wait()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has stopped; only its parent's bookkeeping is left


def _pids(worker: WorkerProcess, timeout_s: float = 30) -> dict:
    found, deadline = {}, time.monotonic() + timeout_s
    while len(found) < 2 and time.monotonic() < deadline:
        for msg in worker.poll():
            kind, _, pid = msg.message.partition(" ")
            if kind in ("launcher", "child"):
                found[kind] = int(pid)
        time.sleep(0.02)
    assert len(found) == 2, f"the launcher and its child did not start: {found}"
    return found


def test_cancel_stops_a_launcher_and_its_child_within_a_second():
    worker = WorkerProcess([sys.executable, "-c", LAUNCHER], settings=WorkerSettings(cancel_grace_s=5.0))
    pids = _pids(worker)
    start = time.monotonic()
    result = worker.cancel()
    elapsed = time.monotonic() - start
    assert result.status == "cancelled"
    assert elapsed < 1.0, f"cancel took {elapsed:.2f} s"
    assert not _alive(pids["launcher"]) and not _alive(pids["child"])


def test_the_guis_cancel_returns_at_once_and_polling_finishes_the_run():
    worker = WorkerProcess([sys.executable, "-c", LAUNCHER])
    pids = _pids(worker)
    start = time.monotonic()
    worker.request_cancel()
    assert time.monotonic() - start < 0.1
    while not worker.finished and time.monotonic() - start < 1.0:
        worker.poll()
        time.sleep(0.01)
    assert worker.finished and worker.result.status == "cancelled"
    assert not _alive(pids["launcher"]) and not _alive(pids["child"])


def test_a_probe_past_its_time_limit_stops_the_launchers_child(tmp_path):
    pidfile = tmp_path / "child.pid"
    launcher = tmp_path / "PythonSlicer"
    launcher.write_text(f"#!/bin/sh\nsleep 20 &\necho $! > {pidfile}\nwait\n")
    launcher.chmod(0o755)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="took more than"):
        dependencies.probe(str(launcher), dict(os.environ), timeout_s=1.0)
    assert time.monotonic() - start < 4.0  # the probe did not wait for the orphaned child's pipes
    assert not _alive(int(pidfile.read_text()))


def test_every_child_gets_its_own_group_and_no_console_window_on_windows(monkeypatch):
    import subprocess

    from U2ADSlicerLib import processes, worker

    started = []

    class Recorder:
        def __init__(self, argv, **kwargs):
            started.append(kwargs)
            raise OSError("recorded")

    monkeypatch.setattr(sys, "platform", "win32")
    assert processes.popen_options() == {"creationflags": 0x00000200 | 0x08000000}
    monkeypatch.setattr(subprocess, "Popen", Recorder)
    with pytest.raises(OSError, match="recorded"):
        worker.WorkerProcess(["python", "-m", "u2adcore"])
    with pytest.raises(OSError, match="recorded"):
        dependencies.probe("python")
    assert [k.get("creationflags") for k in started] == [0x08000200, 0x08000200]
