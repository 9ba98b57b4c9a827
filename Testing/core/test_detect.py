"""The detection pipeline end to end: a real (tiny, randomly initialised) EdgeMAE checkpoint, a
phantom study read from files, every output checked against the input in physical space."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from u2adcore.config import SEGMENTS, PhantomConfig, Thresholds, U2ADConfig, from_dict
from u2adcore.data.phantom import make_phantom, write_phantom
from u2adcore.detect import OUTPUT_FILES, detect_study, detection_config, write_detection
from u2adcore.errors import Cancelled, InputError, OutputExistsError
from u2adcore.io.study import load_study, study_from_arrays
from u2adcore.methods.registry import get_method
from u2adcore.model.edgemae import EdgeMAE
from u2adcore.model.presets import model_config
from u2adcore.progress import CancelToken
from u2adcore.training.checkpoint import file_sha256, save_checkpoint
from u2adcore.volume.orientation import to_canonical
from u2adcore.volume.preprocess import prepare_slices

THRESHOLDS = Thresholds(patient=0.05, segment=0.2, pixel=0.05, method="test")


def tiny_checkpoint(path, thresholds=None):
    torch.manual_seed(0)
    cfg = U2ADConfig()
    model = EdgeMAE(model_config("tiny"))
    save_checkpoint(path, model, cfg, training_data={"n_studies": 0}, thresholds=thresholds)
    return path


def detection_setup(checkpoint, mc: int = 2):
    cfg = U2ADConfig()
    cfg.inference.mc_samples = mc
    method = get_method("u2ad", config=cfg, checkpoint=checkpoint)
    return method, detection_config(cfg, method)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 1-mm phantom (grid samples fall on voxel centres, so back-mapping is exact) with one lesion."""
    root = tmp_path_factory.mktemp("detect")
    phantom = make_phantom(11, n_lesions=1, cfg=PhantomConfig(pixel_mm=1.0))
    paths = write_phantom(phantom, root / "study")
    paths["ckpt"] = tiny_checkpoint(root / "tiny.pt", THRESHOLDS)
    paths["root"] = root
    return paths


@pytest.fixture(scope="module")
def study(files):
    return load_study(files["image"], files["cord"], levels=files["discs"], levels_kind="discs", study_id="ph11")


@pytest.fixture(scope="module")
def detected(files, study):
    method, cfg = detection_setup(files["ckpt"])
    result = detect_study(study, method, cfg)
    outputs = write_detection(result, files["root"] / "out")
    return result, outputs, cfg


def _same_grid(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


def test_every_output_file_is_written_and_every_nifti_lies_on_the_input_grid(files, detected):
    _, outputs, _ = detected
    assert sorted(p.name for p in outputs.values()) == sorted(OUTPUT_FILES)
    assert all(p.is_file() for p in outputs.values())
    image = sitk.ReadImage(str(files["image"]))
    for name in ("anomaly_map", "error_map", "eu_map", "reconstruction", "candidates"):
        out = sitk.ReadImage(str(outputs[name]))
        _same_grid(out, image)
        expected = sitk.sitkUInt8 if name == "candidates" else sitk.sitkFloat32
        assert out.GetPixelID() == expected, name
    # nothing is left behind by the staging
    assert not [p for p in (files["root"]).iterdir() if p.name.endswith(".part")]


def test_maps_fill_only_the_analysed_slice_and_candidates_are_labels_inside_the_cord(files, detected):
    result, outputs, _ = detected
    cord = sitk.ReadImage(str(files["cord"]))
    amap = sitk.ReadImage(str(outputs["anomaly_map"]))
    cand = sitk.ReadImage(str(outputs["candidates"]))
    amap_c = sitk.GetArrayFromImage(to_canonical(amap))
    cand_c = sitk.GetArrayFromImage(to_canonical(cand))
    cord_c = sitk.GetArrayFromImage(to_canonical(cord)) > 0
    others = np.delete(np.arange(amap_c.shape[0]), result.slice_index)
    assert not amap_c[others].any() and not cand_c[others].any()
    labels = set(np.unique(cand_c).tolist())
    assert labels <= {0, 1, 2, 3} and 1 in labels
    assert labels - {0} == set(range(1, max(labels) + 1))  # ranks are consecutive
    assert np.all(cord_c[cand_c > 0]), "a candidate voxel lies outside the cord mask"
    # candidates are where the map exceeds the pixel threshold (on a 1-mm grid labels and map agree voxel for voxel)
    assert np.all(amap_c[cand_c > 0] > THRESHOLDS.pixel)
    # the 3D map holds exactly the 2D map's values
    assert amap_c.max() == pytest.approx(float(result.scored.amap.max()), rel=1e-5)


def test_reconstruction_is_in_original_units_and_equals_the_input_away_from_the_cord(files, study, detected):
    """Outside ROI patches μ = x (nothing is masked there), so the back-mapped reconstruction must
    reproduce the (clipped) input intensities exactly on a 1-mm grid."""
    result, outputs, cfg = detected
    (prepared,) = prepare_slices(study, cfg.preprocess)
    t = prepared.transform
    image_c = sitk.GetArrayFromImage(to_canonical(study.image))[result.slice_index]
    recon_c = sitk.GetArrayFromImage(to_canonical(sitk.ReadImage(str(outputs["reconstruction"]))))[result.slice_index]
    on_grid = t.to_slice(np.ones((t.size, t.size), np.uint8), "nearest").astype(bool)
    cord_c = sitk.GetArrayFromImage(to_canonical(study.cord))[result.slice_index] > 0
    far = on_grid & ~ndimage.binary_dilation(cord_c, iterations=20)
    assert far.sum() > 1000
    expected = np.clip(image_c[far], t.intensity_lo, t.intensity_hi)
    np.testing.assert_allclose(recon_c[far], expected, rtol=1e-4, atol=1e-3 * t.intensity_hi)


def test_curve_csv_segments_and_result_json_agree(files, detected):
    result, outputs, _ = detected
    with open(outputs["curve"]) as f:
        rows = list(csv.DictReader(f))
    pos = np.array([float(r["position_mm"]) for r in rows])
    val = np.array([float(r["anocurve"]) for r in rows])
    assert pos[0] == 0 and np.allclose(np.diff(pos), 1.0)
    doc = json.loads(outputs["result"].read_text())
    # all six segments are known here, so the patient score is the peak over C2-C3 ... C7-T1
    assert doc["patient_score"] == pytest.approx(max(s["score"] for s in doc["segments"]), rel=1e-5)
    assert doc["patient_score"] <= val.max() + 1e-9
    assert [s["name"] for s in doc["segments"]] == list(SEGMENTS)
    for seg in doc["segments"]:
        mine = [r for r in rows if r["segment"] == seg["name"]]
        assert seg["known"] is True  # the phantom's discs C1-C2 ... T1-T2 place all six
        assert seg["score"] == pytest.approx(max(float(r["anocurve"]) for r in mine), rel=1e-5)
        assert all(seg["start_mm"] - 1e-6 <= float(r["position_mm"]) < seg["end_mm"] + 1e-6 for r in mine)
        assert seg["positive"] == (seg["score"] > THRESHOLDS.segment)
    assert doc["patient_positive"] == (doc["patient_score"] > THRESHOLDS.patient)
    top = max(doc["segments"], key=lambda s: s["score"])
    assert doc["top_segment"] == top["name"]


def test_result_json_carries_identity_settings_and_timings(files, detected):
    result, outputs, cfg = detected
    doc = json.loads(outputs["result"].read_text())
    assert doc["method"]["method"] == "u2ad"
    assert doc["method"]["sha256"] == file_sha256(files["ckpt"])
    assert doc["method"]["preset"] == "tiny" and doc["method"]["model_path"] == str(files["ckpt"])
    settings = from_dict(U2ADConfig, doc["settings"])
    assert settings == cfg and settings.model.preset == "tiny" and settings.inference.mc_samples == 2
    assert doc["seed"] == cfg.inference.seed
    assert doc["slice_indices"] == [doc["slice_index"]] == [result.slice_index]
    assert {"preprocess", "inference", "scoring", "write"} <= set(doc["timings_s"])
    assert all(v >= 0 for v in doc["timings_s"].values())
    assert doc["thresholds"]["patient"] == THRESHOLDS.patient
    assert doc["inputs"]["image"] == str(files["image"])


def test_same_seed_gives_the_same_scores(files, study, detected):
    result, _, _ = detected
    method, cfg = detection_setup(files["ckpt"])
    again = detect_study(study, method, cfg)
    assert again.patient_score == result.patient_score
    assert [s.score for s in again.segments] == [s.score for s in result.segments]


def test_without_levels_or_thresholds_the_study_still_gets_map_curve_and_patient_score(files, tmp_path):
    study = load_study(files["image"], files["cord"])
    method, cfg = detection_setup(tiny_checkpoint(tmp_path / "plain.pt"))
    result = detect_study(study, method, cfg)
    outputs = write_detection(result, tmp_path / "out")
    doc = json.loads(outputs["result"].read_text())
    assert all(s["known"] is False and s["score"] is None and "positive" not in s for s in doc["segments"])
    assert "patient_positive" not in doc and doc["top_segment"] is None
    assert doc["patient_score"] > 0
    # without a calibrated pixel threshold no candidate is outlined (docs/DETECTION.md)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(outputs["candidates"]))).max() == 0
    assert doc["n_candidates"] == 0
    assert {r["segment"] for r in csv.DictReader(open(outputs["curve"]))} == {""}


def test_a_foreign_output_folder_is_refused_unless_overwrite(detected, tmp_path):
    result, _, _ = detected
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("someone's notes")
    with pytest.raises(OutputExistsError, match=r"notes\.txt.*--overwrite"):
        write_detection(result, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    write_detection(result, out, overwrite=True)
    assert (out / "result.json").is_file() and (out / "notes.txt").read_text() == "someone's notes"
    # a folder holding only our own outputs is simply updated
    write_detection(result, out / "again")
    write_detection(result, out / "again")


def test_cancel_during_detection_raises_and_writes_nothing(files, study, tmp_path):
    method, cfg = detection_setup(files["ckpt"])
    token = CancelToken()
    stages = []

    def cancel_at_inference(event):
        stages.append(event.stage)
        if event.stage == "inference":
            token.cancel()

    with pytest.raises(Cancelled):
        detect_study(study, method, cfg, progress=cancel_at_inference, cancel=token)
    assert stages == ["preprocess", "inference"]


def test_cancel_while_writing_leaves_no_partial_files(detected, tmp_path):
    result, _, _ = detected
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        write_detection(result, tmp_path / "out", cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_a_cord_mask_with_fewer_than_three_roi_patches_is_refused(files):
    arr = np.random.default_rng(0).uniform(50, 100, (20, 64, 64)).astype(np.float32)
    cord = np.zeros(arr.shape, np.uint8)
    cord[10, 32, 32] = 1  # a single voxel: one ROI patch
    study = study_from_arrays(arr, cord, study_id="tiny-cord")
    method, cfg = detection_setup(files["ckpt"])
    with pytest.raises(InputError, match=r"cord mask covers only 1 of the 8x8-pixel patches in sagittal slice \d+ \(at least 3 needed\)"):
        detect_study(study, method, cfg)


@pytest.mark.realdata
def test_real_healthy_scan_with_two_landmarks(errsm, files, tmp_path):
    """A real PSR-oriented 3D T2w scan: outputs on its grid, candidates in its manual cord mask,
    and segments between the C2 and T2 landmarks placed by the prior and flagged as inferred."""
    subject = errsm["errsm_11"]
    study = load_study(subject["image"], subject["cord"], levels=subject["landmarks"], levels_kind="bodies")
    method, cfg = detection_setup(files["ckpt"])
    outputs = write_detection(detect_study(study, method, cfg), tmp_path / "out")
    image = sitk.ReadImage(str(subject["image"]))
    for name in ("anomaly_map", "candidates", "reconstruction"):
        _same_grid(sitk.ReadImage(str(outputs[name])), image)
    cand = sitk.GetArrayFromImage(sitk.ReadImage(str(outputs["candidates"])))
    cord = sitk.GetArrayFromImage(sitk.ReadImage(str(subject["cord"]))) > 0
    assert cand.max() >= 1 and np.all(cord[cand > 0])
    doc = json.loads(outputs["result"].read_text())
    assert all(s["known"] and s["score"] is not None for s in doc["segments"])
    assert any(s["inferred"] for s in doc["segments"])  # only C2 and T2 were marked
