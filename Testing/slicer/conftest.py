"""Fixtures for the Slicer module's tests, in CI (slicer-core) and inside the Slicer app alike.

`scene` is a fresh `slicer.vtkMRMLScene()` everywhere (inside the application the user's scene
is left alone). Tests marked `requires_slicer_app` skip with the reason when
`slicer.app` is absent.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2] / "U2ADSlicer"
# The widget harness lives in a folder without __init__.py: slicer-core's `slicer` meta-package
# imports every package it finds in a folder named "slicer" on sys.path (this one, when
# Testing/ is on it) and copies their names into `slicer`.
HARNESS_DIR = Path(__file__).resolve().parent / "support"
for _path in (MODULE_DIR, HARNESS_DIR):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

slicer = pytest.importorskip("slicer", reason="slicer-core (pip) or the Slicer application is needed")

IN_APP = hasattr(slicer, "app") and not getattr(slicer.app, "isHarness", False)


def pytest_collection_modifyitems(config, items):
    if IN_APP:
        return
    skip = pytest.mark.skip(reason="needs the 3D Slicer application (slicer.app is absent: slicer-core only)")
    for item in items:
        if "requires_slicer_app" in item.keywords:
            item.add_marker(skip)


def _scene():
    """A scene of the test's own, in the application too: the user's scene is never cleared."""
    yield slicer.vtkMRMLScene()


@pytest.fixture
def scene():
    yield from _scene()


@pytest.fixture(scope="module")
def module_scene():
    """One scene for a module whose tests all inspect the result of one expensive run."""
    yield from _scene()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained checkpoint of the "tiny" preset: real weights through the real loader, fast."""
    torch = pytest.importorskip("torch")
    from u2adcore.config import U2ADConfig
    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.model.presets import model_config
    from u2adcore.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = model_config("tiny")
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, EdgeMAE(cfg), U2ADConfig(model=cfg), training_data={"note": "untrained, tests only"})
    return path


@pytest.fixture
def widget(tmp_path):
    """The module's real U2ADSlicerWidget, set up offscreen on a fresh scene through the headless
    harness (Testing/slicer/support/u2ad_harness), with its dependency probe finished. Outside the app only."""
    if IN_APP:
        pytest.skip("the harness replaces qt and slicer.app: it runs outside the Slicer application only")
    pytest.importorskip("PySide6", reason="the widget harness needs PySide6 (requirements-dev.txt)")
    import u2ad_harness as harness

    harness.install()
    harness.dialogs.clear()
    slicer.mrmlScene = slicer.vtkMRMLScene()
    import U2ADSlicer

    w = U2ADSlicer.U2ADSlicerWidget()
    w.parent._entered = True
    w.setup()
    w.enter()
    assert harness.wait_until(lambda: w._probe is None, 120), "the dependency probe did not finish"
    yield w
    w.cleanup()
    w.parent.deleteLater()
    slicer.app.processEvents()
