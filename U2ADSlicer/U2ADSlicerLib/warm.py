"""A warm worker: one `u2ad` process that stays up between detections, with the model loaded.

The first detection of a session pays for starting Python, importing torch and loading the model
(seconds); later ones reuse them. The server (`python -m U2ADSlicerLib.warm`) reads one JSON line
per request on stdin ({"argv": [...]}: the arguments of `python -m u2adcore` after the program),
runs U2ADCore's CLI in-process with the same jsonl protocol, then prints {"event": "idle"}.
Checkpoints are cached by path, modification time and device. The client (`WarmSession`) gives
each request a `WarmJob` with the WorkerProcess interface; cancelling a job stops the whole
server tree (the next request starts a new one), so cancel stays immediate.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

IDLE = "idle"

if __package__ in (None, ""):  # run as a script by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _install_checkpoint_cache() -> None:
    from u2adcore.training import checkpoint

    original = checkpoint.load_checkpoint
    cache: dict = {}

    def cached(path, *args, **kwargs):
        resolved = Path(path).resolve()
        key = (str(resolved), resolved.stat().st_mtime_ns, repr(args), repr(sorted(kwargs.items())))
        if key not in cache:
            cache.clear()  # one model at a time: memory stays that of one detection
            cache[key] = original(path, *args, **kwargs)
        return cache[key]

    checkpoint.load_checkpoint = cached


def serve(stdin=sys.stdin) -> int:
    """The server loop (in the worker's interpreter)."""
    from u2adcore.cli.main import main as u2ad_main

    _install_checkpoint_cache()
    print(json.dumps({"event": IDLE}), flush=True)
    for line in stdin:
        if not line.strip():
            continue
        try:
            argv = json.loads(line)["argv"]
            u2ad_main([str(a) for a in argv])
        except SystemExit:
            pass
        except Exception as exc:  # a crash ends this request, not the server
            print(json.dumps({"event": "error", "message": f"{type(exc).__name__}: {exc}"}), flush=True)
        print(json.dumps({"event": IDLE}), flush=True)
    return 0


class WarmSession:
    """The client side: starts the server on first use and restarts it after a cancel or a crash."""

    def __init__(self, python: str, env: Optional[dict] = None):
        from .worker import worker_env

        self.python = python
        self.env = dict(worker_env() if env is None else env)
        here = str(Path(__file__).resolve().parent.parent)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (self.env.get("PYTHONPATH", ""), here) if p)
        self._proc: Optional[subprocess.Popen] = None
        self._lines: queue.Queue = queue.Queue()
        self._stderr: collections.deque = collections.deque(maxlen=20)
        self.job: Optional["WarmJob"] = None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self.alive else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _start(self) -> None:
        from . import processes

        self._lines = queue.Queue()
        self._proc = subprocess.Popen(
            [self.python, "-m", "U2ADSlicerLib.warm"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1, env=self.env, **processes.popen_options(),
        )
        proc, lines, stderr = self._proc, self._lines, self._stderr

        def pump_stdout():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        def pump_stderr():
            for line in proc.stderr:
                stderr.append(line)

        threading.Thread(target=pump_stdout, daemon=True).start()
        threading.Thread(target=pump_stderr, daemon=True).start()
        self._await_idle()

    def _await_idle(self) -> None:
        """Skip to the server's first idle line (it has imported U2ADCore)."""
        while True:
            line = self._lines.get()
            if line is None:
                tail = "".join(self._stderr).strip().splitlines()
                raise RuntimeError(f"the warm U2AD worker did not start: {tail[-1] if tail else 'no message'}")
            if line.strip() == json.dumps({"event": IDLE}):
                return

    def warm_up(self) -> None:
        """Start the server now (blocking: call it from a thread)."""
        if not self.alive:
            self._start()

    def submit(self, argv: Sequence[str]) -> "WarmJob":
        """Run one request; `argv` as for `python -m u2adcore` (WorkerProcess's argv[3:])."""
        if self.job is not None and not self.job.finished:
            raise RuntimeError("the warm worker is busy")
        if not self.alive:
            self._start()
        self._proc.stdin.write(json.dumps({"argv": list(argv)}) + "\n")
        self._proc.stdin.flush()
        self.job = WarmJob(self, list(argv))
        return self.job

    def stop(self) -> None:
        from . import processes

        if self._proc is not None and self._proc.poll() is None:
            processes.signal_tree(self._proc, force=True)
            self._proc.wait()
        self._proc = None


class WarmJob:
    """One request to the warm worker, with the WorkerProcess interface the panel polls."""

    def __init__(self, session: WarmSession, argv: list):
        self.session = session
        self.argv = argv
        self.result = None
        self.last_progress = None
        self._terminal = None
        self._cancel_reason: Optional[str] = None

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def cancelling(self) -> bool:
        return self._cancel_reason is not None

    def poll(self) -> list:
        from .worker import WorkerResult, parse_line

        messages = []
        while self.result is None:
            try:
                line = self.session._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:  # the server died
                tail = "".join(self.session._stderr).strip().splitlines()
                self.result = WorkerResult("error", {}, f"the U2AD worker stopped unexpectedly: {tail[-1] if tail else 'no message'}", None)
                break
            msg = parse_line(line)
            if msg is None:
                continue
            if msg.event == "log" and line.strip() == json.dumps({"event": IDLE}):
                term = self._terminal
                if term is not None and term.event == "done":
                    self.result = WorkerResult("done", term.outputs, term.message, 0)
                elif term is not None:
                    self.result = WorkerResult(term.event, {}, term.message, None)
                else:
                    self.result = WorkerResult("error", {}, "the U2AD worker ended a request without a result", None)
                break
            if msg.event == "progress":
                self.last_progress = msg.progress
            elif msg.event in ("done", "error", "cancelled") and self._terminal is None:
                self._terminal = msg
            messages.append(msg)
        return messages

    def request_cancel(self, reason: str = "cancelled by the user") -> None:
        """Stop the server's whole tree now (the next request starts a fresh one)."""
        from .worker import WorkerResult

        if self.result is not None:
            return
        self._cancel_reason = reason
        self.session.stop()
        self.result = WorkerResult("cancelled", {}, reason, None)

    def cancel(self, reason: str = "cancelled by the user"):
        self.request_cancel(reason)
        return self.result

    def wait(self, on_message=None, timeout_s: Optional[float] = None):
        import time

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.result is None:
            if deadline is not None and time.monotonic() >= deadline:
                return self.cancel(f"stopped: no result within the time limit of {timeout_s:g} s")
            for msg in self.poll():
                if on_message is not None:
                    on_message(msg)
            time.sleep(0.02)
        return self.result


if __name__ == "__main__":
    sys.exit(serve())
