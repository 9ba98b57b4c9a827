"""The module's settings, kept in the scene's parameter node so they are saved with the scene.

Plain `vtkMRMLScriptedModuleNode` parameters and node references (not parameterNodeWrapper,
which exists only in the app), so the same code runs in the GUI, in batch mode and with
slicer-core. Defaults come from U2ADCore's typed config.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from u2adcore.config import InferenceConfig, PreprocessConfig

MODULE_NAME = "U2ADSlicer"

# Node reference roles in the parameter node.
ROLE_VOLUME = "InputVolume"
ROLE_CORD = "Cord"
ROLE_LEVELS = "Levels"
# Adaptation studies: roles "AdaptStudy<i>Volume" / "...Cord" / "...Levels" (one role per study
# because an absent levels node cannot hold a place in a shared multi-reference role).
PARAM_STUDY_COUNT = "AdaptStudyCount"
# Set on every node a detection creates (value: what it is), so the panel never offers them as inputs.
OUTPUT_ATTRIBUTE = "U2AD.Output"
_STUDY_PARTS = ("Volume", "Cord", "Levels")


@dataclass
class Settings:
    """Everything the panel lets the user choose, besides the nodes.

    `model_path` "" means the model shipped with the extension; `cord_segment_id` "" means the
    first segment of the cord segmentation; `output_dir` "" keeps the worker's files only until
    they are loaded.
    """

    model_path: str = ""
    device: str = "auto"
    mc_samples: int = InferenceConfig().mc_samples
    n_slices: int = PreprocessConfig().n_slices
    cord_segment_id: str = ""
    output_dir: str = ""
    adapt_epochs: int = 0  # 0: the adaptation schedule's own (AdaptConfig: cpu_epochs on a CPU, epochs on a GPU)
    adapt_manifest: str = ""  # when set, adapt on this CSV instead of the loaded studies
    adapted_model_path: str = ""
    method: str = "u2ad"  # the detector (u2adcore.methods.registry); u2ad unless the user picks another
    first_landmark: str = "C2"  # the two bodies "Place 2 landmarks" asks for
    second_landmark: str = "T1"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _param_name(field_name: str) -> str:
    return "".join(part.capitalize() for part in field_name.split("_"))


def get_parameter_node(scene):
    """The module's singleton parameter node (the same one ScriptedLoadableModuleLogic uses)."""
    node = scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
    if node is None:
        node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
        node.UnRegister(None)
        node.SetSingletonTag(MODULE_NAME)
        node.SetModuleName(MODULE_NAME)
        node.SetName(f"{MODULE_NAME}Parameters")
        node = scene.AddNode(node)
    return node


def write_settings(node, settings: Settings) -> None:
    """Store every field as a string parameter (one Modified event for the batch)."""
    was = node.StartModify()
    for name in _FIELDS:
        node.SetParameter(_param_name(name), str(getattr(settings, name)))
    node.EndModify(was)


def read_settings(node) -> Settings:
    """Settings from the node; a parameter never set keeps its default, a malformed one raises."""
    values = {}
    for name, f in _FIELDS.items():
        raw = node.GetParameter(_param_name(name))
        if not raw:
            continue
        kind = type(getattr(Settings(), name))
        try:
            values[name] = kind(raw)
        except ValueError as exc:
            raise ValueError(f"parameter node {node.GetName()}: {_param_name(name)}={raw!r} is not a valid {kind.__name__}") from exc
    return Settings(**values)


@dataclass
class Inputs:
    """The nodes of one detection (`levels` is optional: without it segments are not scored)."""

    volume: object = None
    cord: object = None
    levels: object = None


def write_inputs(node, inputs: Inputs) -> None:
    for role, value in ((ROLE_VOLUME, inputs.volume), (ROLE_CORD, inputs.cord), (ROLE_LEVELS, inputs.levels)):
        node.SetNodeReferenceID(role, value.GetID() if value is not None else None)


def read_inputs(node) -> Inputs:
    return Inputs(node.GetNodeReference(ROLE_VOLUME), node.GetNodeReference(ROLE_CORD), node.GetNodeReference(ROLE_LEVELS))


@dataclass
class StudyNodes:
    """One study for adaptation: a volume, its cord and (optionally) its levels."""

    volume: object
    cord: object
    levels: Optional[object] = None


def _study_role(i: int, part: str) -> str:
    return f"AdaptStudy{i}{part}"


def write_studies(node, studies: list[StudyNodes]) -> None:
    """Keep the adaptation's study list in the scene."""
    for i in range(int(node.GetParameter(PARAM_STUDY_COUNT) or 0)):
        for part in _STUDY_PARTS:
            node.RemoveNodeReferenceIDs(_study_role(i, part))
    for i, study in enumerate(studies):
        for part, value in zip(_STUDY_PARTS, (study.volume, study.cord, study.levels)):
            node.SetNodeReferenceID(_study_role(i, part), value.GetID() if value is not None else None)
    node.SetParameter(PARAM_STUDY_COUNT, str(len(studies)))


def read_studies(node) -> list[StudyNodes]:
    """Every listed study, including stale ones whose volume or cord was deleted."""
    count = int(node.GetParameter(PARAM_STUDY_COUNT) or 0)
    return [StudyNodes(*(node.GetNodeReference(_study_role(i, part)) for part in _STUDY_PARTS)) for i in range(count)]


def usable_studies(node) -> list[StudyNodes]:
    """The listed studies whose volume and cord still exist: what the panel lists and adapts to."""
    return [s for s in read_studies(node) if s.volume is not None and s.cord is not None]


def remove_study(node, shown_row: int) -> None:
    """Remove the study shown at `shown_row` of the usable list, and drop stale entries."""
    studies = usable_studies(node)
    if 0 <= shown_row < len(studies):
        del studies[shown_row]
    write_studies(node, studies)


def default_volume(scene):
    """The volume to preselect as the T2 input: a plain scalar volume (not a labelmap), not one
    of the module's outputs (an anomaly map); None when there is none."""
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
        if node.IsA("vtkMRMLLabelMapVolumeNode") or node.GetAttribute(OUTPUT_ATTRIBUTE):
            continue
        return node
    return None
