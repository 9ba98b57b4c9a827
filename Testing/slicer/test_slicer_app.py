"""Inside the 3D Slicer application only: the module's widget loads and follows its parameter node."""
from __future__ import annotations

import pytest
import slicer

from U2ADSlicerLib import parameters

pytestmark = pytest.mark.requires_slicer_app


def test_widget_loads_and_shows_the_parameter_node(scene):
    slicer.util.selectModule("U2ADSlicer")
    widget = slicer.util.getModuleWidget("U2ADSlicer")
    node = parameters.get_parameter_node(scene)
    settings = parameters.read_settings(node)
    settings.mc_samples = 4
    parameters.write_settings(node, settings)
    slicer.app.processEvents()
    assert widget.ui.mcSamplesSpinBox.value == 4
    assert widget.ui.detectButton.text == "Detect T2 hyperintensity"


def test_logic_is_the_qt_free_logic_on_the_application_scene():
    from U2ADSlicerLib.logic import U2ADLogic

    logic = slicer.util.getModuleLogic("U2ADSlicer")
    assert isinstance(logic, U2ADLogic) and logic.scene is slicer.mrmlScene
