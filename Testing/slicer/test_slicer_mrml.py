"""The MRML side on known output files: nodes, geometry, display, hierarchy, table, chart."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk

from u2adcore.config import SEGMENTS
from u2adcore.errors import InputError
from U2ADSlicerLib import mrml, pipeline
from u2adslicer_testdata import DIRECTION, ORIGIN, SPACING, write_outputs, write_study


def _ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


def _ras_of_nonzero_slicer(node) -> np.ndarray:
    """RAS (mm) of the node's non-zero voxels, sorted, as Slicer places them."""
    kji = np.argwhere(slicer.util.arrayFromVolume(node) != 0)
    ijk1 = np.c_[kji[:, ::-1], np.ones(len(kji))]
    return np.array(sorted(map(tuple, np.round((_ijk_to_ras(node) @ ijk1.T).T[:, :3], 4))))


def _ras_of_nonzero_file(array_zyx: np.ndarray) -> np.ndarray:
    """RAS (mm) of the written array's non-zero voxels, as ITK places them (LPS -> RAS)."""
    image = sitk.GetImageFromArray(array_zyx.astype(np.float32))
    image.SetSpacing(SPACING), image.SetOrigin(ORIGIN), image.SetDirection(DIRECTION)
    lps = [image.TransformIndexToPhysicalPoint([int(i) for i in idx[::-1]]) for idx in np.argwhere(array_zyx != 0)]
    return np.array(sorted(map(tuple, np.round(np.array(lps) * [-1, -1, 1], 4))))


@pytest.fixture
def study(tmp_path, scene):
    paths = write_study(tmp_path / "study")
    volume = mrml.load_volume(scene, paths["image"], "t2")
    cord = mrml.load_volume(scene, paths["cord"], "cord", labelmap=True)
    return scene, volume, cord, paths


def test_outputs_become_nodes_on_the_input_geometry(study, tmp_path):
    scene, volume, _, _ = study
    written = write_outputs(tmp_path / "out")
    out = pipeline.load_detection(scene, tmp_path / "out", volume)

    assert out.anomaly_map.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    np.testing.assert_allclose(_ijk_to_ras(out.anomaly_map), _ijk_to_ras(volume), atol=1e-5)
    # The file is left-handed (det < 0), which Slicer reads with the slice axis reversed: the
    # written voxels must still sit at the same physical places, with the same values.
    assert np.linalg.det(np.reshape(DIRECTION, (3, 3))) < 0
    np.testing.assert_allclose(_ras_of_nonzero_slicer(out.anomaly_map), _ras_of_nonzero_file(written["amap"]), atol=1e-3)
    assert np.sort(slicer.util.arrayFromVolume(out.anomaly_map), None) == pytest.approx(np.sort(written["amap"], None))

    display = out.anomaly_map.GetDisplayNode()
    assert not display.GetAutoWindowLevel()
    assert display.GetWindowLevelMin() == pytest.approx(0.0)
    assert display.GetWindowLevelMax() == pytest.approx(written["display_max"])
    assert display.GetColorNode().GetName() == mrml.ANOMALY_COLOUR_NAME
    assert display.GetApplyThreshold() and display.GetLowerThreshold() > 0.0
    assert out.anomaly_map.GetStorageNode() is None  # the worker's folder is temporary: saving writes anew
    assert scene.GetNumberOfNodesByClass("vtkMRMLVolumeArchetypeStorageNode") == 2  # the inputs' only


def test_candidates_are_one_named_segment_covering_every_label(study, tmp_path):
    scene, volume, _, _ = study
    written = write_outputs(tmp_path / "out")
    seg_node = pipeline.load_detection(scene, tmp_path / "out", volume).candidates

    segmentation = seg_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment = segmentation.GetNthSegment(0)
    assert segment.GetName() == mrml.CANDIDATE_SEGMENT_NAME == "T2 hyperintensity"
    assert "Lesion" in segment.GetTerminology() and "Spinal cord" in segment.GetTerminology()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "exported")
    slicer.vtkSlicerSegmentationsModuleLogic.ExportAllSegmentsToLabelmapNode(seg_node, labelmap)
    np.testing.assert_allclose(_ras_of_nonzero_slicer(labelmap), _ras_of_nonzero_file(written["candidates"]), atol=1e-3)
    scene.RemoveNode(labelmap)
    assert scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 1  # only the input cord: no leftovers


def test_no_candidate_still_gives_the_named_segment(study, tmp_path):
    scene, volume, _, _ = study
    write_outputs(tmp_path / "out", with_candidates=False)
    segmentation = pipeline.load_detection(scene, tmp_path / "out", volume).candidates.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == ["T2 hyperintensity"]


def test_table_chart_and_summary(study, tmp_path):
    scene, volume, _, _ = study
    written = write_outputs(tmp_path / "out")
    out = pipeline.load_detection(scene, tmp_path / "out", volume)

    table = out.table
    assert table.GetNumberOfRows() == 6
    assert [table.GetCellText(r, 0) for r in range(6)] == list(SEGMENTS)
    scores = slicer.util.arrayFromTableColumn(table, "Score")
    expected = [np.nan if s["score"] is None else s["score"] for s in written["result"]["segments"]]
    np.testing.assert_allclose(scores, expected)
    verdicts = [table.GetCellText(r, 3) for r in range(6)]
    assert verdicts[-1].startswith("not scored")
    assert {v for v in verdicts[:5]} <= {"normal", "T2 hyperintensity"}
    assert "T2 hyperintensity" in verdicts[:5] and "normal" in verdicts[:5]
    assert [table.GetCellText(r, 6) for r in range(6)] == ["landmarks", "landmarks", "prior-filled", "landmarks", "landmarks", ""]

    names = [out.chart.GetNthPlotSeriesNode(i).GetName() for i in range(out.chart.GetNumberOfPlotSeriesNodes())]
    assert names[0] == "AnoCurve"
    # C2..C7 body centres are known (C7-T1 is not scored, so T1 has no border), plus both thresholds.
    assert names[1:] == [f"{b} centre" for b in ("C2", "C3", "C4", "C5", "C6", "C7")] + ["segment threshold", "patient threshold"]
    curve = out.chart.GetNthPlotSeriesNode(0).GetTableNode()
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(curve, "anomaly"), np.linspace(0, 0.6, 30))

    assert out.summary.patient_score == pytest.approx(0.6)
    assert out.summary.patient_verdict == "T2 hyperintensity suspected"


def test_outputs_are_filed_beside_the_input_study(study, tmp_path):
    scene, volume, _, _ = study
    sh = scene.GetSubjectHierarchyNode()
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "patient")
    study_item = sh.CreateStudyItem(patient, "study")
    sh.CreateItem(study_item, volume)
    write_outputs(tmp_path / "out")
    out = pipeline.load_detection(scene, tmp_path / "out", volume)

    assert sh.GetItemParent(out.folder_item) == study_item
    children = vtk.vtkIdList()
    sh.GetItemChildren(out.folder_item, children)
    filed = {sh.GetItemDataNode(children.GetId(i)).GetID() for i in range(children.GetNumberOfIds())}
    assert {out.anomaly_map.GetID(), out.candidates.GetID(), out.table.GetID(), out.chart.GetID()} <= filed


def test_a_missing_output_file_is_named(study, tmp_path):
    scene, volume, _, _ = study
    write_outputs(tmp_path / "out")
    (tmp_path / "out" / "curve.csv").unlink()
    with pytest.raises(InputError, match=r"curve\.csv: expected detection output is missing"):
        pipeline.load_detection(scene, tmp_path / "out", volume)


def test_cord_segmentation_exports_onto_the_volume_grid(study, tmp_path):
    scene, volume, cord, paths = study
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "cord seg")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(cord, seg)
    written = mrml.export_cord(scene, seg, volume, tmp_path / "export" / "cord.nii.gz")

    back = mrml.load_volume(scene, written, "back", labelmap=True)
    np.testing.assert_allclose(_ijk_to_ras(back), _ijk_to_ras(volume), atol=1e-5)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(back) > 0, slicer.util.arrayFromVolume(cord) > 0)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["cord.nii.gz"]  # no temporary file left


def test_levels_kind_comes_from_the_labels(scene):
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "levels")
    points.AddControlPoint(vtk.vtkVector3d(0, 0, 0), "C2-C3")
    assert mrml.levels_kind(points) == "discs"
    points.AddControlPoint(vtk.vtkVector3d(0, 0, 10), "C4")
    with pytest.raises(InputError, match="labels mix discs and bodies"):
        mrml.levels_kind(points)
