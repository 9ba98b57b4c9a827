"""The shipped model gives a verdict out of the box (issue 9): its stored healthy-only
calibration, "no" with no candidates on a healthy real cord, a candidate on a pseudo-lesion."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk

from u2adcore.config import SEGMENTS, PseudoAnomalyConfig, U2ADConfig
from u2adcore.data.pseudo import insert_pseudo_lesions
from u2adcore.detect import detect_study, detection_config, write_detection
from u2adcore.io.study import load_study
from u2adcore.methods.registry import get_method
from u2adcore.resources import default_model_path
from u2adcore.scoring.segments import SIGNATURE_BEFORE, scoring_signature
from u2adcore.training.checkpoint import load_checkpoint
from u2adcore.volume.orientation import to_canonical
from u2adcore.volume.slices import mid_sagittal_index


@pytest.fixture(scope="module")
def shipped():
    if not default_model_path().is_file():
        pytest.fail(f"the shipped model is missing: {default_model_path()}")
    cfg = U2ADConfig()
    cfg.inference.device = "cpu"
    method = get_method("u2ad", config=cfg)
    return method, detection_config(cfg, method)


@pytest.fixture(scope="module")
def healthy(errsm):
    """errsm_23 (not a training subject of the shipped model), C2/T2 landmarks, mid-sagittal slice."""
    s = errsm["errsm_23"]
    study = load_study(s["image"], s["cord"], levels=s["landmarks"], levels_kind="bodies", study_id="errsm_23")
    return study, mid_sagittal_index(sitk.GetArrayViewFromImage(to_canonical(study.cord)) > 0)


def _detect(study, slice_index, shipped):
    method, cfg = shipped
    return detect_study(study, method, dataclasses.replace(cfg, preprocess=dataclasses.replace(cfg.preprocess, slices=[slice_index])))


def test_the_shipped_model_carries_healthy_only_thresholds_and_their_provenance(shipped):
    th = load_checkpoint(default_model_path()).thresholds
    assert th is not None and th.patient > 0 and th.segment > 0 and th.pixel > 0
    assert len(th.residual_spread) == 6 and all(0 < v < 0.2 for v in th.residual_spread)
    cal = th.calibration
    assert cal["patient_fpr"] == 0.05 and cal["segment_fpr"] == 0.05 and cal["pixel_fpr"] == 0.01
    # the shipped scoring and inference (settings added after the calibration take their values from before)
    assert {**SIGNATURE_BEFORE, **cal["scoring"]} == scoring_signature(U2ADConfig().scoring, U2ADConfig().inference)
    assert {"errsm_23", "errsm_24", "sct_example", "tptbox", "phantom"} <= set(cal["subjects"])
    assert not {"errsm_11", "errsm_18", "errsm_21"} & set(cal["subjects"])  # the training subjects
    assert cal["n_studies"] == th.n_studies == len(cal["studies"]) >= 30
    assert any("dilated" in s for s in cal["studies"])
    spec = cal["specificity_loso"]
    assert 0 <= spec["ci95"][0] <= spec["specificity"] <= spec["ci95"][1] <= 1
    assert shipped[0].thresholds == th  # detect carries them


def test_a_healthy_real_cord_gets_no_and_no_candidates(healthy, shipped, tmp_path):
    study, i = healthy
    result = _detect(study, i, shipped)
    assert result.patient_positive is False
    assert result.scored.labels.max() == 0
    doc = json.loads(write_detection(result, tmp_path / "out")["result"].read_text())
    assert doc["patient_positive"] is False and doc["n_candidates"] == 0 and doc["candidates"] == []
    assert doc["candidates_rule"] == "none: the patient verdict is negative"
    assert [s["name"] for s in doc["segments"]] == list(SEGMENTS)
    assert all(isinstance(s["positive"], bool) for s in doc["segments"] if s["score"] is not None)
    assert doc["thresholds"]["pixel"] == shipped[0].thresholds.pixel


def test_a_pseudo_lesion_gets_yes_and_a_candidate_on_it(healthy, shipped, tmp_path):
    """One wide, full-contrast pseudo-lesion (fixed seed). With the shipped model only about half of
    full-contrast lesions get an outline (docs/DETECTION.md, verdict figures): this checks that the
    candidate, when there is one, is the lesion, and that the chain verdict -> candidate -> files holds."""
    study, i = healthy
    study = dataclasses.replace(study, lesion=None)
    wide = PseudoAnomalyConfig(width_fraction=(0.9, 1.0), length_factor=(2.0, 4.0))
    lesioned = insert_pseudo_lesions(study, np.random.default_rng(1), n_lesions=(1, 1), slices=[i], cfg=wide).study
    result = _detect(lesioned, i, shipped)
    assert result.patient_positive is True
    sc = result.scored
    lesion = sitk.GetArrayFromImage(to_canonical(lesioned.lesion))[i] > 0
    assert sc.labels.max() >= 1
    doc = json.loads(write_detection(result, tmp_path / "out")["result"].read_text())
    assert doc["candidates"][0]["area_mm2"] >= result.config.scoring.min_candidate_mm2
    assert doc["candidates"][0]["peak"] > shipped[0].thresholds.pixel
    # the candidate lies on the lesion: the 3D candidates file overlaps the lesion mask
    cand = sitk.GetArrayFromImage(to_canonical(sitk.ReadImage(str(tmp_path / "out" / "candidates.nii.gz"))))[i] > 0
    assert (cand & lesion).any()
