"""Progress events and cancellation, shared by training, adaptation and detection.

One event type goes to every consumer: the terminal bar, the JSON-lines stream that the Slicer
module reads from the worker process, and any Python callback.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, TextIO

from .errors import Cancelled


@dataclass
class ProgressEvent:
    """`kind`: start | step | epoch | stage | checkpoint | message | done | cancelled."""

    kind: str
    task: str = ""  # pretrain | adapt | detect | calibrate | evaluate
    stage: str = ""  # e.g. "EU-guided", "EU+AU"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: Optional[float] = None
    lr: Optional[float] = None
    images_per_s: Optional[float] = None
    eta_s: Optional[float] = None
    fraction: Optional[float] = None  # overall 0..1
    message: str = ""

    def to_json(self) -> str:
        return json.dumps({"event": "progress", **{k: v for k, v in dataclasses.asdict(self).items() if v not in (None, "")}})


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Thread-safe cancel flag; long loops call `check()` once per step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def _fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class TerminalProgress:
    """A one-line progress bar on a terminal (stderr); plain lines when not a TTY."""

    def __init__(self, stream: Optional[TextIO] = None, width: int = 24, min_interval_s: float = 0.5):
        self.stream = stream or sys.stderr
        self.width, self.min_interval_s = width, min_interval_s
        self._last = 0.0
        self._tty = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, ev: ProgressEvent) -> None:
        now = time.monotonic()
        if ev.kind == "step" and now - self._last < self.min_interval_s:
            return
        self._last = now
        frac = ev.fraction if ev.fraction is not None else 0.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        parts = [f"{ev.task} {ev.stage}".strip(), f"[{bar}] {frac * 100:5.1f}%"]
        if ev.epochs:
            parts.append(f"epoch {ev.epoch + 1}/{ev.epochs}")
        if ev.loss is not None:
            parts.append(f"loss {ev.loss:.5f}")
        if ev.lr is not None:
            parts.append(f"lr {ev.lr:.2e}")
        if ev.images_per_s is not None:
            parts.append(f"{ev.images_per_s:.1f} img/s")
        parts.append(f"ETA {_fmt_time(ev.eta_s)}")
        if ev.message:
            parts.append(ev.message)
        line = "  ".join(parts)
        if self._tty and ev.kind == "step":
            self.stream.write("\r" + line[:160].ljust(160))
        else:
            self.stream.write(("\r" if self._tty else "") + line + "\n")
        self.stream.flush()


class JsonLinesProgress:
    """Structured progress for the Slicer worker protocol: one JSON object per line on stdout."""

    def __init__(self, stream: Optional[TextIO] = None):
        self.stream = stream  # None: whatever sys.stdout is at the time of each event

    def __call__(self, ev: ProgressEvent) -> None:
        stream = self.stream or sys.stdout
        stream.write(ev.to_json() + "\n")
        stream.flush()


def emit(callback: Optional[ProgressCallback], event: ProgressEvent) -> None:
    if callback is not None:
        callback(event)
