"""The Qt Designer file: names the code uses exist, selectors are configured and connected, and it loads."""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from u2adcore.config import InferenceConfig, PreprocessConfig
from U2ADSlicerLib.parameters import Settings

MODULE = Path(__file__).resolve().parents[2] / "U2ADSlicer"
UI_FILE = MODULE / "Resources" / "UI" / "U2ADSlicer.ui"
CODE = (MODULE / "U2ADSlicer.py").read_text()


@pytest.fixture(scope="module")
def tree():
    return ET.parse(UI_FILE).getroot()


def _widgets(tree) -> dict[str, str]:
    return {w.get("name"): w.get("class") for w in tree.iter("widget")}


def test_every_widget_the_code_uses_exists(tree):
    used = set(re.findall(r"self\.ui\.(\w+)", CODE))
    assert len(used) > 20  # the regex really finds the widget references
    missing = sorted(used - set(_widgets(tree)))
    assert not missing, f"U2ADSlicer.py uses widgets absent from {UI_FILE.name}: {missing}"


def test_node_selectors_have_node_types_and_get_the_scene(tree):
    selectors = [w for w in tree.iter("widget") if w.get("class") == "qMRMLNodeComboBox"]
    assert {w.get("name") for w in selectors} == {"inputVolumeSelector", "cordSelector", "levelsSelector"}
    connected = {
        c.findtext("receiver")
        for c in tree.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)" and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
        and c.findtext("sender") == tree.find("widget").get("name")
    }
    for w in selectors:
        types = [s.text for p in w.findall("property") if p.get("name") == "nodeTypes" for s in p.iter("string")]
        assert types and all(t.startswith("vtkMRML") for t in types), w.get("name")
        assert w.get("name") in connected, f"{w.get('name')} never receives the scene"
    cord_types = [s.text for w in selectors if w.get("name") == "cordSelector" for p in w.findall("property") if p.get("name") == "nodeTypes" for s in p.iter("string")]
    assert cord_types == ["vtkMRMLSegmentationNode", "vtkMRMLLabelMapVolumeNode"]


def test_custom_widgets_are_declared(tree):
    declared = {c.findtext("class") for c in tree.iter("customwidget")}
    used = {cls for cls in _widgets(tree).values() if not cls.startswith("Q")}
    assert used <= declared, f"undeclared custom widgets: {sorted(used - declared)}"


def test_loads_with_qt_ui_loader_and_stand_ins(tree):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    QtWidgets = pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a CI-only dependency (not in Slicer)")
    from PySide6.QtCore import QFile
    from PySide6.QtUiTools import QUiLoader

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    loader = QUiLoader()
    for custom in tree.iter("customwidget"):
        base = getattr(QtWidgets, custom.findtext("extends"))
        loader.registerCustomWidget(type(custom.findtext("class"), (base,), {}))
    handle = QFile(str(UI_FILE))
    assert handle.open(QFile.ReadOnly)
    root = loader.load(handle)
    handle.close()
    assert root is not None, loader.errorString()
    for name, cls in _widgets(tree).items():
        found = root.findChild(QtWidgets.QWidget, name) if name != root.objectName() else root
        assert found is not None and type(found).__name__ == cls, name
    # The designer defaults agree with the typed config (the parameter node overrides them anyway).
    assert root.findChild(QtWidgets.QSpinBox, "mcSamplesSpinBox").value() == InferenceConfig().mc_samples
    assert root.findChild(QtWidgets.QSpinBox, "slicesSpinBox").value() == PreprocessConfig().n_slices
    epochs = root.findChild(QtWidgets.QSpinBox, "adaptEpochsSpinBox")
    assert epochs.value() == Settings().adapt_epochs == 0 and epochs.specialValueText() == "schedule default"
    app.processEvents()


def test_the_documented_batch_script_is_the_shipped_one():
    doc = (MODULE.parent / "docs" / "SLICER_MODULE.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert (MODULE / "Resources" / "batch_detect.py").read_text() in blocks
    assert (MODULE.parent / "docs" / "slicer_workflow.png").stat().st_size > 10_000
