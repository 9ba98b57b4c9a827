"""Qt-free half of the U2AD Slicer module: MRML logic, the worker client and dependency checks.

Everything here takes the MRML scene as an argument, so it runs inside Slicer, in
`Slicer --no-main-window` batch mode and in CI with slicer-core alone. The U2ADCore library
ships inside the extension; `core_dir()` finds it and importing this package (which any
submodule import does first) puts it on `sys.path`, so `u2adcore` imports the same way everywhere.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

_HERE = Path(__file__).resolve().parent


def core_dir() -> Optional[Path]:
    """The folder holding the `u2adcore` package bundled with this module, if any.

    Installed extension: CMake puts U2ADCore beside the module's scripts; source tree:
    U2ADCore sits beside the U2ADSlicer folder.
    """
    for candidate in (_HERE.parent / "U2ADCore", _HERE.parent.parent / "U2ADCore"):
        if (candidate / "u2adcore" / "__init__.py").is_file():
            return candidate
    return None


def ensure_core_importable() -> None:
    """Put the bundled U2ADCore first on sys.path, so the GUI and the worker use one version."""
    found = core_dir()
    if found is not None and str(found) not in sys.path:
        sys.path.insert(0, str(found))


ensure_core_importable()
