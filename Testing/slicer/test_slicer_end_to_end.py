"""A real study through Slicer's storage nodes, detection through the worker process, outputs as nodes.

Runs the shipped batch script's `main` once (it is what `Slicer --no-main-window --python-script`
executes) and checks what it produced.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk

from u2adcore.config import SEGMENTS
from U2ADSlicerLib import mrml

MODULE_DIR = Path(__file__).resolve().parents[2] / "U2ADSlicer"

pytestmark = pytest.mark.realdata


def _load_batch_script():
    spec = importlib.util.spec_from_file_location("u2ad_batch_detect", MODULE_DIR / "Resources" / "batch_detect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ijk_to_ras(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


@pytest.fixture(scope="module")
def run(module_scene, errsm, tmp_path_factory):
    """The shipped model (no --model), K = 2 to keep it quick."""
    from u2adcore.resources import default_model_path

    if not default_model_path().is_file():
        pytest.fail(f"the shipped model is missing: {default_model_path()}")
    subject = errsm["errsm_11"]
    out = tmp_path_factory.mktemp("batch") / "out"
    argv = ["--image", str(subject["image"]), "--cord", str(subject["cord"]),
            "--levels", str(subject["landmarks"]), "--levels-kind", "bodies",
            "--out", str(out), "--device", "cpu", "--mc", "2"]
    script = _load_batch_script()
    code = script.main(argv, module_scene, python=sys.executable)
    node = lambda cls, name: module_scene.GetFirstNode(name, cls)
    return {
        "code": code, "out": out, "scene": module_scene, "subject": subject,
        "volume": node("vtkMRMLScalarVolumeNode", "T2"),
        "amap": node("vtkMRMLScalarVolumeNode", "T2 U2AD anomaly map"),
        "candidates": node("vtkMRMLSegmentationNode", "T2 U2AD candidates"),
        "table": node("vtkMRMLTableNode", "T2 U2AD segment scores"),
        "chart": node("vtkMRMLPlotChartNode", "T2 U2AD AnoCurve"),
    }


def test_batch_script_succeeds_and_saves_every_output(run):
    assert run["code"] == 0
    assert sorted(p.name for p in (run["out"] / "slicer").iterdir()) == sorted(
        ["anomaly_map.nii.gz", "candidates.seg.nrrd", "segment_scores.tsv", "segment_scores.schema.tsv", "anocurve.tsv", "anocurve.schema.tsv"]
    )
    worker_files = run["out"] / "T2"
    assert {"result.json", "anomaly_map.nii.gz", "candidates.nii.gz", "curve.csv", "report.png"} <= {p.name for p in worker_files.iterdir()}
    assert not [p for p in run["out"].rglob(".*")]  # no staging leftovers


def test_anomaly_map_is_on_the_input_geometry(run):
    volume, amap = run["volume"], run["amap"]
    assert amap.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    np.testing.assert_allclose(_ijk_to_ras(amap), _ijk_to_ras(volume), atol=1e-4)
    display = amap.GetDisplayNode()
    assert not display.GetAutoWindowLevel() and display.GetColorNode().GetName() == mrml.ANOMALY_COLOUR_NAME
    values = slicer.util.arrayFromVolume(amap)
    assert values.max() > 0 and values.min() >= 0


def test_saved_anomaly_map_matches_the_workers_in_physical_space(run):
    ours = sitk.ReadImage(str(run["out"] / "slicer" / "anomaly_map.nii.gz"))
    worker = sitk.ReadImage(str(run["out"] / "T2" / "anomaly_map.nii.gz"))
    on_worker_grid = sitk.Resample(ours, worker, sitk.Transform(), sitk.sitkNearestNeighbor, -1.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(on_worker_grid), sitk.GetArrayFromImage(worker), atol=1e-6)
    # Slicer exported the left-handed input with its slice axis reversed (SLICER.md): the worker's
    # grid has another origin and direction, but exactly the same voxel centres as the original.
    original = sitk.ReadImage(str(run["subject"]["image"]))
    np.testing.assert_allclose(_corners(worker), _corners(original), atol=1e-3)


def _corners(image: sitk.Image) -> np.ndarray:
    size = np.array(image.GetSize()) - 1
    corners = [image.TransformIndexToPhysicalPoint([int(c) for c in size * np.array(bits)]) for bits in np.ndindex(2, 2, 2)]
    return np.array(sorted(corners))


def test_candidates_table_and_chart(run):
    segmentation = run["candidates"].GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == ["T2 hyperintensity"]

    table = run["table"]
    assert [table.GetCellText(r, 0) for r in range(table.GetNumberOfRows())] == list(SEGMENTS)
    result = json.loads((run["out"] / "T2" / "result.json").read_text())
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "Score"), [s["score"] for s in result["segments"]])
    # The script completed C2/T2 into all bodies before detection, so the worker saw them as landmarks.
    assert {table.GetCellText(r, 6) for r in range(6)} == {"landmarks"}

    chart = run["chart"]
    names = [chart.GetNthPlotSeriesNode(i).GetName() for i in range(chart.GetNumberOfPlotSeriesNodes())]
    centres = [f"{b} centre" for b in ("C2", "C3", "C4", "C5", "C6", "C7", "T1")]
    # the shipped model carries calibrated thresholds, which the chart draws as series of their own
    assert [n for n in names if "threshold" not in n] == ["AnoCurve"] + centres
    assert {n for n in names if "threshold" in n} == {"segment threshold", "patient threshold"}
    curve = slicer.util.arrayFromTableColumn(chart.GetNthPlotSeriesNode(0).GetTableNode(), "anomaly")
    # levels are known, so the patient score is the curve's peak over C2-C3 ... C7-T1 (docs/DETECTION.md)
    assert max(s["score"] for s in result["segments"] if s["score"] is not None) == pytest.approx(result["patient_score"], rel=1e-5)
    assert curve.max() >= result["patient_score"] - 1e-6
    assert result["method"]["model_path"].endswith("default.pt")  # the shipped model, found by the worker itself


def test_outputs_sit_beside_the_input_in_the_subject_hierarchy(run):
    sh = run["scene"].GetSubjectHierarchyNode()
    volume_item = sh.GetItemByDataNode(run["volume"])
    for key in ("amap", "candidates", "table", "chart"):
        item = sh.GetItemByDataNode(run[key])
        assert sh.GetItemParent(sh.GetItemParent(item)) == sh.GetItemParent(volume_item), key
        assert sh.GetItemName(sh.GetItemParent(item)) == "U2AD results"


def test_batch_script_reports_a_bad_input_with_exit_code_2(tmp_path, scene, errsm, capsys):
    subject = errsm["errsm_11"]
    code = _load_batch_script().main(
        ["--image", str(subject["image"]), "--cord", str(tmp_path / "missing_cord.nii.gz"), "--out", str(tmp_path / "out")], scene
    )
    assert code == 2
    assert "missing_cord.nii.gz: volume file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
