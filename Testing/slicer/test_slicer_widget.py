"""The module's real widget, run offscreen through the headless harness (Testing/slicer/support/u2ad_harness):
inputs set through its selectors, buttons clicked with QTest, the real worker process."""
from __future__ import annotations

import pytest
import slicer

from U2ADSlicerLib import landmarks, mrml, parameters



def click(button):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.mouseClick(button, Qt.LeftButton)


def wait_until(condition, timeout_s):
    import u2ad_harness

    return u2ad_harness.wait_until(condition, timeout_s)


def dialogs():
    import u2ad_harness

    return u2ad_harness.dialogs


def load_errsm(scene, subject, name="errsm_11"):
    volume = mrml.load_volume(scene, subject["image"], name)
    labels = mrml.load_volume(scene, subject["cord"], f"{name} cord labels", labelmap=True)
    cord = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name} cord")
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, cord)
    scene.RemoveNode(labels)
    return volume, cord


@pytest.mark.realdata
def test_detect_button_runs_the_worker_and_loads_the_results(widget, errsm, tiny_model, tmp_path):
    scene = slicer.mrmlScene
    subject = errsm["errsm_11"]
    volume, cord = load_errsm(scene, subject)
    cord_file = mrml.export_cord(scene, cord, volume, tmp_path / "cord.nii.gz")
    levels = landmarks.load_levels_file(scene, subject["landmarks"], "bodies", subject["image"], cord_file, "errsm_11 levels")
    ui = widget.ui
    ui.inputVolumeSelector.setCurrentNode(volume)
    ui.cordSelector.setCurrentNode(cord)
    ui.levelsSelector.setCurrentNode(levels)
    ui.modelPathLineEdit.currentPath = str(tiny_model)
    ui.mcSamplesSpinBox.value = 1
    ui.deviceComboBox.setCurrentIndex(ui.deviceComboBox.findData("cpu"))
    ui.outputDirLineEdit.currentPath = str(tmp_path / "kept")
    node = parameters.get_parameter_node(scene)
    settings = parameters.read_settings(node)
    assert (settings.model_path, settings.mc_samples, settings.device) == (str(tiny_model), 1, "cpu")
    assert parameters.read_inputs(node).volume is volume and parameters.read_inputs(node).cord is cord
    assert ui.detectButton.enabled and not ui.cancelButton.enabled

    click(ui.detectButton)
    assert not ui.detectButton.enabled and ui.cancelButton.enabled
    assert wait_until(lambda: widget._job is None, 240), ui.statusLabel.text

    assert not dialogs().errors
    assert ui.statusLabel.text.startswith("Detection finished"), ui.statusLabel.text
    assert ui.detectButton.enabled and not ui.cancelButton.enabled and ui.progressBar.value == 100
    amap = scene.GetFirstNode("errsm_11 U2AD anomaly map", "vtkMRMLScalarVolumeNode")
    candidates = scene.GetFirstNode("errsm_11 U2AD candidates", "vtkMRMLSegmentationNode")
    table = scene.GetFirstNode("errsm_11 U2AD segment scores", "vtkMRMLTableNode")
    assert amap is not None and candidates is not None and table is not None
    assert slicer.util.arrayFromVolume(amap).shape == slicer.util.arrayFromVolume(volume).shape
    assert candidates.GetSegmentation().GetNthSegment(0).GetName() == mrml.CANDIDATE_SEGMENT_NAME
    assert table.GetNumberOfRows() == 6 and table.GetCellText(0, 0) == "C2-C3"
    assert ui.patientScoreLabel.text not in ("", "-") and float(ui.patientScoreLabel.text.split()[0]) >= 0
    assert (tmp_path / "kept" / "errsm_11" / "result.json").is_file()
