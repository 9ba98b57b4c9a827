"""The worker client: run `python -m u2adcore --progress jsonl ...` in its own process.

Detection and adaptation never run in Slicer's GUI thread (a frozen GUI is what users of other
AI extensions complain about most). The child prints one JSON object per line (docs/ARCHITECTURE.md,
"Progress"); two reader threads collect stdout and stderr so the pipes never fill, and the caller
either polls (`poll()`, from a QTimer in the GUI) or blocks (`wait()`, batch mode). Cancel stops
the child's whole process tree (processes.py); the GUI asks without waiting (`request_cancel`)
and the next polls finish the job. The caller's private work folder then goes away with
everything the child had written, so a cancelled run leaves no half-written outputs.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from . import core_dir, processes
from u2adcore.progress import ProgressEvent

TERMINAL_EVENTS = ("done", "error", "cancelled")
_PROGRESS_FIELDS = {f.name for f in dataclasses.fields(ProgressEvent)}


@dataclass(frozen=True)
class WorkerSettings:
    """How the client treats its child process."""

    # Seconds between terminate() and kill() when cancelling: enough for the child to die cleanly.
    cancel_grace_s: float = 5.0
    # Lines of the child's stderr kept to explain a crash that printed no JSON error.
    stderr_tail_lines: int = 20


@dataclass(frozen=True)
class WorkerMessage:
    """One parsed stdout line. `event`: progress | done | error | cancelled | log (not JSON)."""

    event: str
    progress: Optional[ProgressEvent] = None
    outputs: dict = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class WorkerResult:
    """How a run ended. `status`: done | error | cancelled; `message` is readable in the panel."""

    status: str
    outputs: dict
    message: str
    returncode: Optional[int]


def parse_line(line: str) -> Optional[WorkerMessage]:
    """Parse one line of the jsonl protocol; None for blank lines.

    Non-JSON lines (a library's warning printed to stdout) become `log` messages rather than
    errors, so a chatty dependency cannot break a run. Progress fields this client does not know
    are ignored: a newer U2ADCore may add fields without breaking an older panel.
    """
    text = line.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return WorkerMessage("log", message=text)
    if not isinstance(data, dict) or "event" not in data:
        return WorkerMessage("log", message=text)
    event = data["event"]
    if event == "progress":
        known = {k: v for k, v in data.items() if k in _PROGRESS_FIELDS}
        return WorkerMessage("progress", progress=ProgressEvent(**known))
    if event == "done":
        return WorkerMessage("done", outputs=dict(data.get("outputs") or {}), message=str(data.get("message", "")))
    if event in ("error", "cancelled"):
        return WorkerMessage(event, message=str(data.get("message", "")))
    return WorkerMessage("log", message=text)


def describe_progress(ev: ProgressEvent) -> str:
    """One line for the panel's status label: task, stage, epoch, loss, ETA."""
    parts = [" ".join(p for p in (ev.task, ev.stage) if p) or ev.kind]
    if ev.epochs:
        parts.append(f"epoch {ev.epoch + 1}/{ev.epochs}")
    elif ev.steps:
        parts.append(f"step {ev.step}/{ev.steps}")
    if ev.loss is not None:
        parts.append(f"loss {ev.loss:.5f}")
    if ev.eta_s is not None:
        minutes, seconds = divmod(int(ev.eta_s), 60)
        parts.append(f"ETA {minutes}:{seconds:02d}")
    if ev.message:
        parts.append(ev.message)
    return " · ".join(parts)


def worker_python() -> str:
    """The interpreter that runs the worker: Slicer's PythonSlicer inside the app, else ours."""
    if "slicer" in sys.modules and hasattr(sys.modules["slicer"], "app"):
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def worker_env() -> dict:
    """The child's environment: the bundled U2ADCore first on PYTHONPATH, unbuffered UTF-8 output
    (the client reads UTF-8 whatever the platform's locale)."""
    env = dict(os.environ)
    bundled = core_dir()
    if bundled is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(bundled), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _base(python: str, subcommand: str) -> list[str]:
    return [python, "-m", "u2adcore", "--progress", "jsonl", subcommand]


def _common(model: Optional[Path], device: str) -> list[str]:
    args = ["--device", device]
    if model is not None:
        args += ["--model", str(model)]
    return args


def detect_command(
    python: str,
    image: Path,
    cord: Path,
    out_dir: Path,
    *,
    levels: Optional[Path] = None,
    levels_kind: Optional[str] = None,
    model: Optional[Path] = None,
    device: str = "auto",
    mc_samples: Optional[int] = None,
    n_slices: Optional[int] = None,
    method: str = "u2ad",
) -> list[str]:
    """argv of `u2ad detect` for one study (None settings keep the model's own defaults)."""
    argv = _base(python, "detect") + [str(image), "--cord", str(cord), "--out", str(out_dir)]
    if levels is not None:
        argv += ["--levels", str(levels)]
        if levels_kind:
            argv += ["--levels-kind", levels_kind]
    argv += _common(model, device)
    if mc_samples is not None:
        argv += ["--mc", str(mc_samples)]
    if n_slices is not None:
        argv += ["--n-slices", str(n_slices)]
    if method and method != "u2ad":
        argv += ["--method", method]
    return argv


def segment_cord_command(python: str, image: Path, out: Path, *, device: str = "auto") -> list[str]:
    """argv of `u2ad segment-cord`: the cord mask on the image's grid; its done event names it."""
    return _base(python, "segment-cord") + [str(image), "--out", str(out), "--device", device]


def adapt_command(
    python: str,
    manifest: Path,
    out_model: Path,
    *,
    model: Optional[Path] = None,
    device: str = "auto",
    epochs: Optional[int] = None,
    stage2_start: Optional[int] = None,
) -> list[str]:
    """argv of `u2ad adapt` on the studies of a manifest (None keeps the schedule's own value)."""
    argv = _base(python, "adapt") + ["--manifest", str(manifest), "--out", str(out_model)]
    argv += _common(model, device)
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    if stage2_start is not None:
        argv += ["--stage2-start", str(stage2_start)]
    return argv


_EOF = object()


class WorkerProcess:
    """One running worker. Not thread-safe: call it from one thread (the GUI's or the script's)."""

    def __init__(self, argv: Sequence[str], *, env: Optional[dict] = None, settings: WorkerSettings = WorkerSettings(),
                 plain: bool = False):
        """`plain`: a child that does not speak the jsonl protocol (pip): every line is a log
        message and exit code 0 means done."""
        self.argv = list(argv)
        self.plain = plain
        self.last_log: str = ""
        self.settings = settings
        self._lines: queue.Queue = queue.Queue()
        self._stderr: collections.deque = collections.deque(maxlen=settings.stderr_tail_lines)
        self._terminal: Optional[WorkerMessage] = None
        self._cancel_reason: Optional[str] = None
        self._stdout_closed = False
        self.result: Optional[WorkerResult] = None
        self.last_progress: Optional[ProgressEvent] = None
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=worker_env() if env is None else env,
            **processes.popen_options(),
        )
        self._kill_at: Optional[float] = None
        self._threads = [
            threading.Thread(target=self._pump, args=(self._proc.stdout, self._lines.put, True), daemon=True),
            threading.Thread(target=self._pump, args=(self._proc.stderr, self._stderr.append, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink: Callable, mark_eof: bool) -> None:
        for line in stream:
            sink(line)
        stream.close()
        if mark_eof:
            sink(_EOF)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def cancelling(self) -> bool:
        """A cancel was asked for (the run may still be stopping)."""
        return self._cancel_reason is not None

    @property
    def finished(self) -> bool:
        return self.result is not None

    def poll(self) -> list[WorkerMessage]:
        """Everything the child printed since the last call, without blocking."""
        messages = []
        while True:
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                break
            messages.extend(self._take(item))
        if self.result is None and self._kill_at is not None and time.monotonic() >= self._kill_at:
            processes.signal_tree(self._proc, force=True)  # past the grace period: whatever is left
            self._kill_at = None
        if self._stdout_closed and self.result is None and self._proc.poll() is not None:
            self._finish()
        return messages

    def wait(self, on_message: Optional[Callable[[WorkerMessage], None]] = None, timeout_s: Optional[float] = None) -> WorkerResult:
        """Block until the child ends (batch mode), passing each message to `on_message`.

        Past `timeout_s` the child is stopped, so a stuck run cannot hang a script forever.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.result is None:
            if deadline is not None and time.monotonic() >= deadline:
                return self.cancel(f"stopped: no result within the time limit of {timeout_s:g} s")
            try:
                item = self._lines.get(timeout=0.1)
            except queue.Empty:
                item = None
            messages = (self._take(item) if item is not None else []) + self.poll()
            if on_message is not None:
                for msg in messages:
                    on_message(msg)
        return self.result

    def request_cancel(self, reason: str = "cancelled by the user") -> None:
        """Ask the whole process tree to stop and return at once (the GUI's cancel); polling then
        kills what is left after the grace period and finishes the run as cancelled."""
        if self.result is not None or self._cancel_reason is not None:
            return
        self._cancel_reason = reason
        processes.signal_tree(self._proc, force=False)
        self._kill_at = time.monotonic() + self.settings.cancel_grace_s

    def cancel(self, reason: str = "cancelled by the user") -> WorkerResult:
        """Stop the whole process tree (killed after the grace period) and record the run as
        cancelled; blocks until it is gone (batch mode, time limits)."""
        if self.result is not None:
            return self.result
        if self._cancel_reason is None:
            self._cancel_reason = reason
        processes.stop_tree(self._proc, self.settings.cancel_grace_s)
        self._finish()
        return self.result

    def _take(self, item) -> list[WorkerMessage]:
        if item is _EOF:
            self._stdout_closed = True
            return []
        msg = parse_line(item) if not self.plain else (WorkerMessage("log", message=item.strip()) if item.strip() else None)
        if msg is None:
            return []
        if msg.event == "log":
            self.last_log = msg.message
        if msg.event == "progress":
            self.last_progress = msg.progress
        elif msg.event in TERMINAL_EVENTS and self._terminal is None:
            self._terminal = msg
        return [msg]

    def _finish(self) -> None:
        returncode = self._proc.wait()
        for t in self._threads:
            t.join(timeout=self.settings.cancel_grace_s)
        while True:  # lines that arrived between the last poll and the child's exit
            try:
                self._take(self._lines.get_nowait())
            except queue.Empty:
                break
        term = self._terminal
        if self._cancel_reason is not None:
            self.result = WorkerResult("cancelled", {}, self._cancel_reason, returncode)
        elif self.plain and returncode == 0:
            self.result = WorkerResult("done", {}, self.last_log, returncode)
        elif term is not None and term.event == "done" and returncode == 0:
            self.result = WorkerResult("done", term.outputs, term.message, returncode)
        elif term is not None and term.event in ("error", "cancelled"):
            self.result = WorkerResult(term.event, {}, term.message, returncode)
        else:
            tail = "".join(self._stderr).strip().splitlines()
            detail = tail[-1] if tail else "no message"
            self.result = WorkerResult(
                "error", {}, f"the U2AD worker stopped unexpectedly (exit code {returncode}): {detail}", returncode
            )


class DeferredWorker:
    """A worker whose inputs are still being written: `prepare()` runs on a thread (writing files
    never blocks the GUI), then the WorkerProcess starts on the next `poll()`. Same interface as
    WorkerProcess for the panel; a failure of `prepare` ends the run as an error with its message,
    a cancel before the start ends it as cancelled without starting anything."""

    def __init__(self, prepare: Callable[[], None], argv: Sequence[str], *, env: Optional[dict] = None, start: Optional[Callable] = None):
        """`start(argv)`: what runs the command once prepared (default: a new WorkerProcess; the
        panel passes its warm session's submit)."""
        self.argv = list(argv)
        self._env = env
        self._start = start or (lambda argv: WorkerProcess(argv, env=env))
        self._process: Optional[WorkerProcess] = None
        self._error: Optional[str] = None
        self._cancel_reason: Optional[str] = None
        self.result: Optional[WorkerResult] = None

        def run():
            try:
                prepare()
            except Exception as exc:  # reported in the panel, in words
                self._error = str(exc)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    @property
    def last_progress(self) -> Optional[ProgressEvent]:
        return self._process.last_progress if self._process is not None else None

    @property
    def cancelling(self) -> bool:
        return self._cancel_reason is not None or (self._process is not None and self._process.cancelling)

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def started(self) -> bool:
        return self._process is not None

    def poll(self) -> list[WorkerMessage]:
        if self.result is not None:
            return []
        if self._process is None:
            if self._thread.is_alive():
                return []
            if self._error is not None:
                self.result = WorkerResult("error", {}, self._error, None)
            elif self._cancel_reason is not None:
                self.result = WorkerResult("cancelled", {}, self._cancel_reason, None)
            else:
                try:
                    self._process = self._start(self.argv)
                except (OSError, RuntimeError) as exc:
                    self.result = WorkerResult("error", {}, str(exc), None)
            return []
        messages = self._process.poll()
        self.result = self._process.result
        return messages

    def request_cancel(self, reason: str = "cancelled by the user") -> None:
        if self._process is not None:
            self._process.request_cancel(reason)
        else:
            self._cancel_reason = reason

    def cancel(self, reason: str = "cancelled by the user") -> WorkerResult:
        self.request_cancel(reason)
        self._thread.join()
        self.poll()
        if self._process is not None:
            self.result = self._process.cancel(reason)
        return self.result

    def wait(self, on_message: Optional[Callable[[WorkerMessage], None]] = None, timeout_s: Optional[float] = None) -> WorkerResult:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._thread.join(timeout_s)
        self.poll()
        if self._process is not None and self.result is None:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self.result = self._process.wait(on_message, remaining)
        return self.result
