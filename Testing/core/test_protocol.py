"""The 5-fold protocol: stratified deterministic folds, thresholds blind to the test fold."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from u2adcore.config import EvaluationConfig
from u2adcore.evaluation.calibrate import PixelScores, StudyRecord, choose_thresholds
from u2adcore.evaluation.protocol import cross_validate, format_mean_std, markdown_table, stratified_folds

SEGS = ("C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1")


def _records(n_pos: int, n_neg: int, separation: float, seed: int = 0, pixels: bool = False) -> list[StudyRecord]:
    """Positive studies carry a lesion at one segment whose score is raised by `separation`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_pos + n_neg):
        positive = i < n_pos
        seg_scores = {s: float(rng.uniform(0.0, 0.3)) for s in SEGS}
        lesion_seg = SEGS[i % len(SEGS)]
        if positive:
            seg_scores[lesion_seg] += separation
        px = None
        if pixels:
            truth = np.zeros(200, bool)
            if positive:
                truth[:10] = True
            px = PixelScores(scores=(rng.uniform(0, 0.3, 200) + separation * truth).astype(np.float32), lesion=truth)
        out.append(
            StudyRecord(
                id=f"s{i:02d}",
                label=positive,
                segments=frozenset({lesion_seg}) if positive else frozenset(),
                patient_score=max(seg_scores.values()),
                segment_scores=seg_scores,
                pixels=px,
                recon={"ssim": 0.9, "psnr": 30.0, "mse": 0.001},
            )
        )
    return out


def test_folds_are_stratified_balanced_and_seeded():
    labels = np.r_[np.ones(13, bool), np.zeros(27, bool)]
    folds = stratified_folds(labels, 5, seed=3)
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 40
    pos_per_fold = np.bincount(folds[labels], minlength=5)
    assert pos_per_fold.max() - pos_per_fold.min() <= 1
    np.testing.assert_array_equal(folds, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=4))
    with pytest.raises(ValueError, match="cannot fill 5 folds"):
        stratified_folds(labels[:4], 5, seed=0)


def test_separable_scores_give_perfect_metrics():
    res = cross_validate(_records(10, 10, separation=1.0, pixels=True), EvaluationConfig())
    summary = res.summary()
    for key in ("patient_accuracy", "patient_f1", "patient_specificity", "segment_f1", "segment_recall",
                "segment_specificity", "pixel_auroc", "pixel_auprc", "pixel_dice"):
        assert summary[key][0] == pytest.approx(1.0), key
        assert summary[key][1] == pytest.approx(0.0), key
    assert summary["ssim"][0] == pytest.approx(0.9) and "eu" not in summary
    ids = sorted(i for f in res.folds for i in f.test_ids)
    assert ids == sorted(r.id for r in _records(10, 10, 1.0))  # every study tested exactly once


def test_uninformative_scores_are_near_chance():
    res = cross_validate(_records(30, 30, separation=0.0, seed=5), EvaluationConfig())
    acc = res.summary()["patient_accuracy"][0]
    assert 0.3 < acc < 0.7


def test_fold_thresholds_ignore_the_test_fold():
    cfg = EvaluationConfig(seed=1)
    records = _records(10, 10, separation=0.5, seed=2)
    base = cross_validate(records, cfg)
    fold0 = set(base.folds[0].test_ids)
    # make the held-out fold's scores absurd: fold 0's thresholds must not move
    changed = [dataclasses.replace(r, patient_score=r.patient_score - 100.0) if r.id in fold0 else r for r in records]
    again = cross_validate(changed, cfg)
    assert again.folds[0].thresholds.patient == base.folds[0].thresholds.patient
    assert again.folds[0].thresholds.segment == base.folds[0].thresholds.segment
    train = [r for r in records if r.id not in fold0]
    assert base.folds[0].thresholds == choose_thresholds(train, cfg)
    assert again.folds[1].thresholds.patient != base.folds[1].thresholds.patient


def test_protocol_refuses_without_positives():
    with pytest.raises(ValueError, match="at least 2 positive"):
        cross_validate(_records(0, 10, 0.5), EvaluationConfig())


def test_normal_only_calibration_meets_fpr():
    records = _records(0, 40, separation=0.0, seed=7)
    th = choose_thresholds(records, EvaluationConfig(normal_fpr=0.05))
    assert th.method.startswith("normal-only") and th.n_studies == 40
    assert np.mean([r.patient_score > th.patient for r in records]) <= 0.05
    assert np.mean([max(v for v in r.segment_scores.values()) > th.segment for r in records]) <= 0.05


def test_labelled_calibration_meets_sensitivity():
    records = _records(20, 20, separation=0.2, seed=8)
    th = choose_thresholds(records, EvaluationConfig(patient_sensitivity=0.9))
    assert np.mean([r.patient_score > th.patient for r in records if r.label]) >= 0.9
    assert "sensitivity>=0.9" in th.method and th.segment is not None


def test_markdown_table_layout():
    res = cross_validate(_records(10, 10, 1.0), EvaluationConfig())
    table = markdown_table({"u2ad": res, "zscore": res})
    lines = table.strip().splitlines()
    assert lines[0].startswith("| method | patient acc | patient F1 | patient spec | segment F1 | segment recall | segment spec")
    assert len(lines) == 4 and lines[2].startswith("| u2ad | 1.000 ± 0.000")
    assert "pixel AUROC" not in lines[0]  # no method had lesion masks


def test_mean_std_format_keeps_tiny_values_readable():
    assert format_mean_std(0.7744, 0.0123, 5) == "0.774 ± 0.012"
    assert format_mean_std(3.2e-5, 1.1e-6, 5) == "3.20e-05 ± 1.1e-06"
    assert format_mean_std(float("nan"), float("nan"), 0) == "–"
