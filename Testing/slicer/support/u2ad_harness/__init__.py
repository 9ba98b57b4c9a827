"""A headless harness that runs the module's real widget (U2ADSlicerWidget) offscreen.

`qt` over PySide6 with PythonQt's rules, strict ctk/qMRML stand-ins, and `slicer.app` /
`slicer.mrmlScene` / `slicer.util` dialogs over slicer-core's real MRML scene. It is not the
application: Qt 6 instead of Slicer's Qt 5, no views or layouts, no PythonSlicer launcher
(docs/SLICER_MODULE.md, "What the harness covers").
"""
from __future__ import annotations

import time

from .app import dialogs, install  # noqa: F401


def wait_until(condition, timeout_s: float, step_s: float = 0.02) -> bool:
    """Run the Qt event loop until `condition()` holds or `timeout_s` passes."""
    import slicer

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        slicer.app.processEvents()
        if condition():
            return True
        time.sleep(step_s)
    slicer.app.processEvents()
    return bool(condition())
