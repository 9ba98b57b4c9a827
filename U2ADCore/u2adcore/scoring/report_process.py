"""report.png drawn by a second process, so a one-shot `u2ad detect` does not wait for matplotlib.

A fresh `u2ad detect` spends most of its time importing (torch, SciPy, matplotlib), and the
report is the only part that needs matplotlib (its import and one figure cost about 0.8 s). On a
machine with a second core, a child forked before torch is imported loads matplotlib while this
process loads torch and runs the model, then draws report.png while this process writes the
NIfTI files. Forking, not spawning: a spawned interpreter would pay Python's start-up and the
package's imports again. Where fork is unavailable, or the child fails or dies, the report is
drawn here, so the outputs never depend on the child.
"""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, ContextManager, Optional

if TYPE_CHECKING:
    from ..detect import DetectionResult


def _warm_up() -> None:
    """Import matplotlib and load its fonts and PNG writer by drawing a tiny figure: the costs a
    first report pays, paid here while the parent is still busy."""
    import io

    from matplotlib.cm import ScalarMappable  # noqa: F401 - what write_report imports
    from matplotlib.colors import Normalize  # noqa: F401
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "u2ad", weight="bold")
    fig.savefig(io.BytesIO(), format="png")


def _serve(conn) -> None:
    """The child: import the drawing code and warm it up at once, then draw each (path, result)
    it is sent."""
    from .report import write_report

    _warm_up()
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent is gone
            return
        if job is None:
            return
        try:
            write_report(*job)
            conn.send(None)
        except Exception:  # noqa: BLE001 - reported to the parent, which draws the report itself
            conn.send(traceback.format_exc())


class ReportProcess:
    """A child process that draws report.png files; `submit` then `wait` around other work."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), name="u2ad-report", daemon=True)
        self._proc.start()
        child.close()
        self._pending: Optional[tuple[Path, "DetectionResult"]] = None
        self._gone: Optional[str] = None  # set once the child is dead: nothing more is sent to it
        self.fallback_reason: Optional[str] = None  # why the last report was drawn here instead

    def submit(self, path: Path, result: "DetectionResult") -> None:
        """Start drawing `result`'s report at `path`; the SimpleITK volumes stay here (the report
        does not read them, and they would only slow the hand-over)."""
        self._pending = (Path(path), result)
        self.fallback_reason = self._gone
        if self._gone is not None:
            return
        try:
            self._conn.send((Path(path), dataclasses.replace(result, volumes={})))
        except (BrokenPipeError, OSError) as exc:
            self._gone = self.fallback_reason = f"report process unavailable ({exc})"

    def wait(self) -> None:
        """Block until the submitted report is on disk, drawing it here if the child could not."""
        path, result = self._pending
        self._pending = None
        if self.fallback_reason is None:
            try:
                error = self._conn.recv()
            except (EOFError, OSError) as exc:
                error = self._gone = f"report process died ({exc!r})"
            if error is None:
                return
            self.fallback_reason = error
        from .report import write_report

        write_report(path, result)

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._conn.close()
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()

    def __enter__(self) -> "ReportProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def report_process_if_useful() -> ContextManager[Optional[ReportProcess]]:
    """`with report_process_if_useful() as reports:` gives a ReportProcess when it can pay off
    (fork available, a second core, torch not yet imported), else None. A process that already
    holds torch (Slicer's warm worker, a test run) has no import left to overlap and should not
    fork a multi-threaded interpreter."""
    import os
    import sys

    if "fork" not in multiprocessing.get_all_start_methods() or "torch" in sys.modules:
        return contextlib.nullcontext(None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2:
        return contextlib.nullcontext(None)
    return ReportProcess()
