"""All MRML work of the module: files to nodes and back, display, subject hierarchy, table, chart.

Every function takes the scene (or nodes of it) as an argument and uses only MRML classes, so
the same code runs in the application, in batch mode and with slicer-core in CI. Files go
through Slicer's storage nodes, the readers/writers the application itself uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import slicer
import vtk

from u2adcore.errors import InputError
from u2adcore.io.atomic import staged_output_dir

from .results import DetectionSummary

CANDIDATE_SEGMENT_NAME = "T2 hyperintensity"
# DICOM/SNOMED codes: category "Morphologically Altered Structure", type "Lesion", region "Spinal cord".
CANDIDATE_TERMINOLOGY = (
    "Segmentation category and type - DICOM master list"
    "~SCT^49755003^Morphologically Altered Structure"
    "~SCT^52988006^Lesion~^^"
    "~Anatomic codes - DICOM master list~SCT^2748008^Spinal cord~^^"
)
ANOMALY_COLOUR_NAME = "U2AD anomaly"


@dataclass(frozen=True)
class DisplaySettings:
    """How outputs are shown. The anomaly map's range itself is ScoringConfig.display_max."""

    overlay_opacity: float = 0.6
    # Anomaly values at or below this are transparent (0 = outside the analysed cord/slices).
    overlay_hide_at_or_below: float = 0.0
    candidate_colour: tuple[float, float, float] = (1.0, 0.85, 0.0)
    colour_entries: int = 256


# ---------------------------------------------------------------- files <-> nodes


def _storage_for(node):
    if node.IsA("vtkMRMLSegmentationNode"):
        return slicer.vtkMRMLSegmentationStorageNode()
    if node.IsA("vtkMRMLMarkupsNode"):
        return slicer.vtkMRMLMarkupsJsonStorageNode()
    if node.IsA("vtkMRMLTableNode"):
        return slicer.vtkMRMLTableStorageNode()
    if node.IsA("vtkMRMLVolumeNode"):
        return slicer.vtkMRMLVolumeArchetypeStorageNode()
    raise TypeError(f"{node.GetName()}: cannot save a {node.GetClassName()}")


def load_volume(scene, path: Path, name: Optional[str] = None, *, labelmap: bool = False, detach: bool = False, read=None, display: bool = True):
    """A volume file (.nii.gz, .nrrd, ...) as a scalar or labelmap volume node, with a display node.

    `detach` is for temporary files: the node keeps the data but forgets the file, so saving the
    scene writes it anew instead of pointing at a file that is about to be deleted. `read`: the
    file already read off the GUI thread (read_volume_detached): only added to the scene here.
    `display=False` leaves out the default display node, whose automatic window/level scans every
    voxel (~50 ms for 4 M voxels): for a caller that sets its own (show_anomaly_map).
    """
    path = Path(path)
    if read is not None and detach:
        node = scene.AddNode(read)
        node.SetName(name or path.name.split(".")[0])
        if display:
            node.CreateDefaultDisplayNodes()
        return node
    if not path.is_file():
        raise InputError(path, "volume file not found")
    node = scene.AddNewNodeByClass(
        "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode",
        name or path.name.split(".")[0],
    )
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise InputError(path, "Slicer could not read this volume")
    if detach:
        node.SetAndObserveStorageNodeID(None)
        scene.RemoveNode(storage)
    if display:
        node.CreateDefaultDisplayNodes()
    return node


def write_node(node, path: Path) -> Path:
    """Write a data node to `path` through a standalone storage node (format from the suffix).

    Written in a staging folder and moved into place, so companion files (a table's
    `.schema.tsv`) arrive with it and an interrupted write leaves nothing behind.
    """
    path = Path(path)
    storage = _storage_for(node)
    if storage.IsA("vtkMRMLVolumeArchetypeStorageNode"):
        storage.SetUseCompression(path.name.endswith(".gz"))  # worker inputs: plain .nii, written fast
    with staged_output_dir(path.parent, overwrite=True) as stage:
        storage.SetFileName(str(stage / path.name))
        if not storage.WriteData(node):
            raise InputError(path, f"Slicer could not write {node.GetName()}")
    return path


def snapshot_volume(node):
    """A copy of a volume node outside any scene, with its own copy of the voxels (a memory copy:
    milliseconds), so it can be written on a background thread while the user goes on editing."""
    copy = slicer.vtkMRMLLabelMapVolumeNode() if node.IsA("vtkMRMLLabelMapVolumeNode") else slicer.vtkMRMLScalarVolumeNode()
    image = vtk.vtkImageData()
    image.DeepCopy(node.GetImageData())
    copy.SetAndObserveImageData(image)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    copy.SetIJKToRASMatrix(matrix)
    copy.SetName(node.GetName())
    return copy


def read_volume_detached(path: Path, *, labelmap: bool = False):
    """A volume file read into a node outside any scene (safe on a background thread); None if
    Slicer cannot read it. `load_volume(..., read=node)` then adds it to the scene."""
    node = slicer.vtkMRMLLabelMapVolumeNode() if labelmap else slicer.vtkMRMLScalarVolumeNode()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)
    return node if Path(path).is_file() and storage.ReadData(node) else None


def node_of_path(path: Optional[str], exported: dict) -> Optional[str]:
    """The name of the node exported to `path` ({Path: node}), or `path` itself if none was."""
    for file, node in exported.items():
        if path is not None and Path(path) == Path(file):
            return node.GetName()
    return path


def readable(message: str, exported: dict) -> str:
    """Replace exported temporary file paths in a worker message by the names of their nodes."""
    for file, node in exported.items():
        message = message.replace(str(file), f"'{node.GetName()}'")
    return message


def export_cord(scene, cord_node, reference_volume, path: Path, segment_id: str = "") -> Path:
    """The cord as a 0/1 labelmap file on the reference volume's grid (what the worker reads)."""
    return write_node(cord_labelmap(scene, cord_node, reference_volume, segment_id), path)


def cord_labelmap(scene, cord_node, reference_volume, segment_id: str = ""):
    """The cord as a labelmap node outside the scene (snapshot_volume), ready to be written on
    any thread. A labelmap volume is copied as it is; a segmentation is exported (`segment_id`,
    or its first segment) onto the reference volume's geometry first."""
    if cord_node.IsA("vtkMRMLLabelMapVolumeNode"):
        return snapshot_volume(cord_node)
    if not cord_node.IsA("vtkMRMLSegmentationNode"):
        raise InputError(cord_node.GetName(), "the cord must be a segmentation or a labelmap volume")
    segmentation = cord_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise InputError(cord_node.GetName(), "the cord segmentation has no segment")
    segment_id = segment_id or segmentation.GetNthSegmentID(0)
    if segmentation.GetSegment(segment_id) is None:
        raise InputError(cord_node.GetName(), f"no segment with ID {segment_id!r}")
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{cord_node.GetName()} export")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(cord_node, ids, labelmap, reference_volume):
            raise InputError(cord_node.GetName(), f"could not export segment {segment_id!r} to a labelmap")
        copy = snapshot_volume(labelmap)
        copy.SetName(cord_node.GetName())
        return copy
    finally:
        scene.RemoveNode(labelmap)


def levels_kind(markups_node) -> str:
    """"discs" for labels like "C2-C3", "bodies" for "C2"; mixing the two is refused."""
    labels = [markups_node.GetNthControlPointLabel(i).strip() for i in range(markups_node.GetNumberOfControlPoints())]
    if not labels:
        raise InputError(markups_node.GetName(), "the landmark list has no points")
    kinds = {"discs" if "-" in label else "bodies" for label in labels}
    if len(kinds) != 1:
        raise InputError(markups_node.GetName(), f"labels mix discs and bodies: {labels}; use one kind, e.g. C2-C3 or C2")
    return kinds.pop()


def set_markups_points(markups_node, labels: Iterable[str], points_lps: Iterable[np.ndarray], descriptions: Iterable[str]) -> None:
    """Replace the list's points (LPS mm in, RAS in the node), keeping them editable."""
    markups_node.RemoveAllControlPoints()
    for label, point, description in zip(labels, points_lps, descriptions):
        ras = vtk.vtkVector3d(-float(point[0]), -float(point[1]), float(point[2]))
        index = markups_node.AddControlPoint(ras, label)
        markups_node.SetNthControlPointDescription(index, description)


# ---------------------------------------------------------------- subject hierarchy


def place_beside(scene, reference_node, nodes: Iterable, folder_name: str) -> int:
    """Put `nodes` in a new folder next to `reference_node` (its study) in the subject hierarchy.

    The app adds new data nodes to the hierarchy itself, slicer-core does not: items are created
    where missing, moved where present. Returns the folder's item ID.
    """
    sh = scene.GetSubjectHierarchyNode()
    ref_item = sh.GetItemByDataNode(reference_node)
    if not ref_item:
        ref_item = sh.CreateItem(sh.GetSceneItemID(), reference_node)
    folder = sh.CreateFolderItem(sh.GetItemParent(ref_item), folder_name)
    for node in nodes:
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, folder)
        else:
            sh.CreateItem(folder, node)
    return folder


# ---------------------------------------------------------------- anomaly map


def _hot(x: float) -> tuple[float, float, float]:
    """Black-red-yellow-white ramp: brighter means more anomalous, readable over grey anatomy."""
    return (min(1.0, 3 * x), min(1.0, max(0.0, 3 * x - 1)), min(1.0, max(0.0, 3 * x - 2)))


def anomaly_colour_node(scene, display: DisplaySettings = DisplaySettings()):
    """The module's colour table (one per scene, reused by name)."""
    existing = scene.GetFirstNodeByName(ANOMALY_COLOUR_NAME)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    colours = scene.AddNewNodeByClass("vtkMRMLColorTableNode", ANOMALY_COLOUR_NAME)
    colours.SetTypeToUser()
    n = display.colour_entries
    colours.SetNumberOfColors(n)
    for i in range(n):
        colours.SetColor(i, f"{i}", *_hot(i / (n - 1)), 1.0)
    colours.SetAttribute("Category", "U2AD")
    return colours


def show_anomaly_map(scene, volume, display_max: float, display: DisplaySettings = DisplaySettings()) -> None:
    """Fixed, calibrated colour scale: 0 .. display_max always, never auto window/level.

    A fixed scale is what makes two studies comparable at a glance: the same colour means the
    same reconstruction error everywhere.
    """
    dn = volume.GetDisplayNode()
    if dn is None:  # made here with auto window/level off: the default one computes it from every voxel
        dn = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
        dn.AutoWindowLevelOff()
        volume.SetAndObserveDisplayNodeID(dn.GetID())
    dn.SetAndObserveColorNodeID(anomaly_colour_node(scene, display).GetID())
    dn.AutoWindowLevelOff()
    dn.SetWindowLevelMinMax(0.0, display_max)
    dn.AutoThresholdOff()
    dn.SetApplyThreshold(True)
    dn.SetThreshold(np.nextafter(display.overlay_hide_at_or_below, math.inf), np.finfo(np.float32).max)


def show_in_slice_views(scene, background, foreground, opacity: float) -> int:
    """Background = the T2 volume, foreground = the anomaly map, in every slice view.

    Returns the number of views changed (0 without views, e.g. in batch mode or slicer-core).
    """
    composites = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode") for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]
    for c in composites:
        c.SetBackgroundVolumeID(background.GetID())
        c.SetForegroundVolumeID(foreground.GetID())
        c.SetForegroundOpacity(opacity)
    return len(composites)


# ---------------------------------------------------------------- candidates


def candidates_segmentation(scene, candidates_path: Path, reference_volume, name: str, display: DisplaySettings = DisplaySettings(), read=None):
    """The candidates (any label > 0) as one segment named "T2 hyperintensity".

    A single-label labelmap would import as a segment named after the labelmap node, so the name,
    colour and terminology are set explicitly. No candidate gives an empty segment of that name,
    so the segmentation always says what it is.
    """
    labels = load_volume(scene, candidates_path, f"{name} labels", labelmap=True, detach=True, read=read)
    try:
        array = slicer.util.arrayFromVolume(labels)
        array[:] = (array > 0).astype(array.dtype)
        slicer.util.arrayFromVolumeModified(labels)
        seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        seg_node.CreateDefaultDisplayNodes()
        seg_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
        segmentation = seg_node.GetSegmentation()
        if array.any():
            if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, seg_node):
                raise InputError(candidates_path, "could not import the candidates into a segmentation")
            segment = segmentation.GetNthSegment(0)
        else:
            # An empty labelmap representation built here: AddEmptySegment needs the converter
            # rules that only the application registers.
            segment = slicer.vtkSegment()
            segment.SetName(CANDIDATE_SEGMENT_NAME)
            segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), slicer.vtkOrientedImageData())
            segmentation.AddSegment(segment)
        segment.SetName(CANDIDATE_SEGMENT_NAME)
        segment.SetColor(*display.candidate_colour)
        segment.SetTerminology(CANDIDATE_TERMINOLOGY)
        return seg_node
    finally:
        scene.RemoveNode(labels)


# ---------------------------------------------------------------- table and chart


def _column(table: vtk.vtkTable, kind, name: str, values) -> None:
    col = kind()
    col.SetName(name)
    for v in values:
        col.InsertNextValue(v)
    table.AddColumn(col)


def scores_table(scene, summary: DetectionSummary, name: str):
    """Six rows (C2-C3 … C7-T1): score, threshold, verdict, span along the cord, where the levels
    came from, the calibrated yes/no and the cord compression (MSCC) when measured."""
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = node.GetTable()
    nan = float("nan")
    rows = summary.segments
    _column(table, vtk.vtkStringArray, "Segment", [s.name for s in rows])
    _column(table, vtk.vtkDoubleArray, "Score", [nan if s.score is None else s.score for s in rows])
    threshold = nan if summary.segment_threshold is None else summary.segment_threshold
    _column(table, vtk.vtkDoubleArray, "Threshold", [threshold] * len(rows))
    _column(table, vtk.vtkStringArray, "Verdict", [s.verdict for s in rows])
    _column(table, vtk.vtkDoubleArray, "From (mm)", [nan if s.start_mm is None else s.start_mm for s in rows])
    _column(table, vtk.vtkDoubleArray, "To (mm)", [nan if s.end_mm is None else s.end_mm for s in rows])
    _column(table, vtk.vtkStringArray, "Levels", ["" if s.score is None else "prior-filled" if s.inferred else "landmarks" for s in rows])
    _column(table, vtk.vtkStringArray, "T2 hyperintensity?", [s.yes_no for s in rows])
    _column(table, vtk.vtkDoubleArray, "MSCC (%)", [nan if s.mscc is None else s.mscc for s in rows])
    node.SetUseColumnTitleAsColumnHeader(True)
    node.SetAttribute("U2AD.PatientScore", f"{summary.patient_score:.6g}")
    node.SetAttribute("U2AD.PatientVerdict", summary.patient_verdict)
    return node


def _series(scene, chart, table_node, x_col: str, y_col: str, name: str, colour, *, dashed: bool = False):
    series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
    series.SetAndObserveTableNodeID(table_node.GetID())
    series.SetXColumnName(x_col)
    series.SetYColumnName(y_col)
    series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
    series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
    series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash if dashed else slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
    series.SetColor(*colour)
    chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return series


def curve_chart(scene, summary: DetectionSummary, name: str) -> tuple:
    """The AnoCurve with vertical segment borders and horizontal thresholds, in one chart.

    Returns (chart, [table nodes], [series nodes]) so callers can file them all in the study.
    """
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(f"AnoCurve {summary.study_id}".strip())
    chart.SetXAxisTitle("position along the cord from its top (mm)")
    chart.SetYAxisTitle("mean anomaly across the cord")
    curve_table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} data")
    _column(curve_table.GetTable(), vtk.vtkDoubleArray, "position_mm", summary.curve_mm.tolist())
    _column(curve_table.GetTable(), vtk.vtkDoubleArray, "anomaly", summary.curve_values.tolist())
    series = [_series(scene, chart, curve_table, "position_mm", "anomaly", "AnoCurve", (0.85, 0.1, 0.1))]
    tables = [curve_table]

    top = float(np.nanmax(summary.curve_values)) if summary.curve_values.size else 1.0
    lines = {f"{body} centre": ([mm, mm], [0.0, top]) for body, mm in summary.borders().items()}
    x_span = [float(summary.curve_mm.min()), float(summary.curve_mm.max())] if summary.curve_mm.size else [0.0, 1.0]
    for label, value in (("segment threshold", summary.segment_threshold), ("patient threshold", summary.patient_threshold)):
        if value is not None:
            lines[label] = (x_span, [value, value])
    if lines:
        lines_table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} lines")
        for label, (xs, ys) in lines.items():
            _column(lines_table.GetTable(), vtk.vtkDoubleArray, f"{label} x", xs)
            _column(lines_table.GetTable(), vtk.vtkDoubleArray, f"{label} y", ys)
            colour = (0.1, 0.3, 0.9) if "threshold" in label else (0.4, 0.4, 0.4)
            series.append(_series(scene, chart, lines_table, f"{label} x", f"{label} y", label, colour, dashed=True))
        tables.append(lines_table)
    chart.SetLegendVisibility(False)
    return chart, tables, series


def show_chart(scene, chart) -> bool:
    """Show the chart in the plot view (a no-op returning False without the app's layout)."""
    plot_views = [scene.GetNthNodeByClass(i, "vtkMRMLPlotViewNode") for i in range(scene.GetNumberOfNodesByClass("vtkMRMLPlotViewNode"))]
    for view in plot_views:
        view.SetPlotChartNodeID(chart.GetID())
    return bool(plot_views)

