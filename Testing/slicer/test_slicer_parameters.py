"""Settings persist in the parameter node and survive a saved scene (.mrml write + read)."""
from __future__ import annotations

import pytest
import slicer

from U2ADSlicerLib import parameters as P


def _reload(scene, path):
    scene.SetURL(str(path))
    assert scene.Commit()
    fresh = slicer.vtkMRMLScene()
    fresh.SetURL(str(path))
    assert fresh.Connect()
    return fresh


def test_settings_and_node_choices_round_trip_through_a_saved_scene(scene, tmp_path):
    node = P.get_parameter_node(scene)
    volumes = [scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"t2 {i}") for i in range(2)]
    cords = [scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"cord {i}") for i in range(2)]
    levels = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "levels")
    settings = P.Settings(model_path=str(tmp_path / "my model.pt"), device="cpu", mc_samples=3, n_slices=5,
                          cord_segment_id="Segment_1", output_dir=str(tmp_path), adapt_epochs=7,
                          adapt_manifest=str(tmp_path / "studies.csv"),
                          adapted_model_path=str(tmp_path / "adapted.pt"))
    P.write_settings(node, settings)
    P.write_inputs(node, P.Inputs(volumes[1], cords[0], levels))
    P.write_studies(node, [P.StudyNodes(volumes[0], cords[0], None), P.StudyNodes(volumes[1], cords[1], levels)])

    fresh = _reload(scene, tmp_path / "scene.mrml")
    node2 = P.get_parameter_node(fresh)
    assert fresh.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode") == 1  # found, not re-created
    assert P.read_settings(node2) == settings
    inputs = P.read_inputs(node2)
    assert (inputs.volume.GetName(), inputs.cord.GetName(), inputs.levels.GetName()) == ("t2 1", "cord 0", "levels")
    studies = [(s.volume.GetName(), s.cord.GetName(), s.levels and s.levels.GetName()) for s in P.read_studies(node2)]
    assert studies == [("t2 0", "cord 0", None), ("t2 1", "cord 1", "levels")]


def test_unset_parameters_take_the_core_defaults_and_bad_ones_are_named(scene):
    from u2adcore.config import InferenceConfig

    node = P.get_parameter_node(scene)
    assert P.read_settings(node).mc_samples == InferenceConfig().mc_samples
    node.SetParameter("McSamples", "ten")
    with pytest.raises(ValueError, match=r"McSamples='ten' is not a valid int"):
        P.read_settings(node)
