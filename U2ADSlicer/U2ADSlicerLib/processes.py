"""Child processes that can always be stopped, with everything they started.

Inside Slicer the worker runs under `PythonSlicer`, a launcher whose child does the work:
terminating the launcher alone leaves the real Python running with the pipes open. So every
child starts as the leader of its own process group (POSIX: a new session; Windows: a new
process group, with no console window, as Slicer's own launchers do) and is stopped as a tree.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


# Windows process creation flags (subprocess defines them only on Windows).
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


def popen_options() -> dict:
    """Keyword arguments for subprocess.Popen/run: own process group, and on Windows no console
    window flashing up (what Slicer's own process launchers do)."""
    if sys.platform == "win32":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    return {"start_new_session": True}


def signal_tree(proc: subprocess.Popen, *, force: bool) -> None:
    """Ask the process and everything it started to stop (`force`: kill them now)."""
    if sys.platform == "win32":
        args = ["taskkill", "/PID", str(proc.pid), "/T"] + (["/F"] if force else [])
        subprocess.run(args, capture_output=True, creationflags=CREATE_NO_WINDOW, check=False)
        if force and proc.poll() is None:
            proc.kill()
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL if force else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        if proc.poll() is None:  # the group is gone but the leader is not reaped yet
            (proc.kill if force else proc.terminate)()


def group_alive(proc: subprocess.Popen) -> bool:
    """Whether any process of the child's group is still running (POSIX; the leader on Windows)."""
    if sys.platform == "win32":
        return proc.poll() is None
    proc.poll()  # reap the leader if it ended, so it does not count as alive
    if os.path.isdir("/proc"):
        return _linux_group_running(proc.pid)
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _linux_group_running(pgid: int) -> bool:
    """Any process of the group that is not a zombie (an orphaned zombie waits for init to reap
    it, which may take a while; it runs nothing and holds no pipe)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def stop_tree(proc: subprocess.Popen, grace_s: float) -> None:
    """Terminate the tree, kill what is left after `grace_s`, and reap the leader (blocking)."""
    signal_tree(proc, force=False)
    deadline = time.monotonic() + grace_s
    while group_alive(proc) and time.monotonic() < deadline:
        time.sleep(0.02)
    if group_alive(proc):
        signal_tree(proc, force=True)
    proc.wait()
