"""The tests shipped inside the module (U2ADSlicer/Testing/Python), collected here so CI runs
them with slicer-core exactly as SlicerPythonTestRunner runs them inside Slicer."""
from __future__ import annotations

import sys
from pathlib import Path

# slicer-core's `slicer` meta-package imports every module of a folder named "slicer" on sys.path
# (as slicer.test_slicer_shipped); only pytest's own import collects the shipped tests.
if not __name__.startswith("slicer."):
    SHIPPED = Path(__file__).resolve().parents[2] / "U2ADSlicer" / "Testing" / "Python"
    sys.path.insert(0, str(SHIPPED))
    from test_u2adslicer_module import *  # noqa: E402,F401,F403
