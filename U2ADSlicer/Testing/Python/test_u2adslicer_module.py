"""Tests shipped with the U2AD module: they need only the installed module (U2ADSlicerLib and the
bundled U2ADCore with its model), never the source repository.

They run three ways: in CI with slicer-core (Testing/slicer/test_slicer_shipped.py collects
them), inside 3D Slicer through KitwareMedical's SlicerPythonTestRunner (the module's self-test
delegates to it; it runs pytest in a separate Slicer process), and from the self-test's own
fallback without pytest. Each test makes its own scene: the user's scene is never cleared.
Tests that need the application are skipped outside it, with the reason.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

try:
    import U2ADSlicerLib  # noqa: F401
except ImportError:  # run by path from an installed or built module
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import slicer

IN_APP = hasattr(slicer, "app") and not getattr(slicer.app, "isHarness", False)
requires_slicer_app = pytest.mark.skipif(not IN_APP, reason="needs the 3D Slicer application (slicer.app)")


def phantom_study(folder: Path) -> dict:
    """A generated study (U2ADCore's phantom, with one lesion): image, cord and disc labels."""
    from u2adcore.data.phantom import make_phantom, write_phantom

    return write_phantom(make_phantom(7, n_lesions=1), folder)


def check_detection_on_a_phantom(folder: Path) -> None:
    """The shipped model, through the real worker process, on a study written by the package:
    the four output nodes, on the input's grid, filed beside it."""
    from U2ADSlicerLib import landmarks, mrml
    from U2ADSlicerLib.logic import U2ADLogic
    from U2ADSlicerLib.worker import worker_python

    scene = slicer.vtkMRMLScene()
    paths = phantom_study(folder / "study")
    volume = mrml.load_volume(scene, paths["image"], "phantom T2")
    cord = mrml.load_volume(scene, paths["cord"], "phantom cord", labelmap=True)
    levels = landmarks.load_levels_file(scene, paths["discs"], "discs", paths["image"], paths["cord"], "phantom levels")
    outputs = U2ADLogic(scene).process(volume, cord, levels, device="cpu", mc_samples=1, python=worker_python(), timeout_s=300)
    amap = slicer.util.arrayFromVolume(outputs.anomaly_map)
    assert amap.shape == slicer.util.arrayFromVolume(volume).shape and amap.max() > 0
    assert outputs.candidates.GetSegmentation().GetNthSegment(0).GetName() == mrml.CANDIDATE_SEGMENT_NAME
    assert outputs.table.GetNumberOfRows() == 6
    assert sum(s.score is not None for s in outputs.summary.segments) >= 4
    sh = scene.GetSubjectHierarchyNode()
    assert sh.GetItemParent(sh.GetItemByDataNode(outputs.anomaly_map)) == outputs.folder_item


def test_detection_on_a_phantom_with_the_shipped_model(tmp_path):
    check_detection_on_a_phantom(tmp_path)


def test_the_bundled_core_is_the_one_the_worker_runs():
    from U2ADSlicerLib import core_dir
    from U2ADSlicerLib.worker import worker_env

    import u2adcore

    core = core_dir()
    assert core is not None and Path(u2adcore.__file__).resolve().is_relative_to(core.resolve())
    assert worker_env()["PYTHONPATH"].split(__import__("os").pathsep)[0] == str(core)


@requires_slicer_app
def test_the_module_widget_follows_its_parameter_node():
    from U2ADSlicerLib import parameters

    slicer.util.selectModule("U2ADSlicer")
    widget = slicer.util.getModuleWidget("U2ADSlicer")
    node = parameters.get_parameter_node(slicer.mrmlScene)
    settings = parameters.read_settings(node)
    saved = settings.mc_samples
    try:
        settings.mc_samples = saved + 1
        parameters.write_settings(node, settings)
        slicer.app.processEvents()
        assert widget.ui.mcSamplesSpinBox.value == saved + 1
    finally:
        settings.mc_samples = saved
        parameters.write_settings(node, settings)


@requires_slicer_app
def test_the_application_logic_is_the_qt_free_logic_on_the_application_scene():
    from U2ADSlicerLib.logic import U2ADLogic

    logic = slicer.util.getModuleLogic("U2ADSlicer")
    assert isinstance(logic, U2ADLogic) and logic.scene is slicer.mrmlScene


def run_without_pytest() -> None:
    """The self-test's fallback when SlicerPythonTestRunner is not installed: the detection check
    in this process, in its own scene and temporary folder."""
    with tempfile.TemporaryDirectory(prefix="u2ad-selftest-") as tmp:
        check_detection_on_a_phantom(Path(tmp))
