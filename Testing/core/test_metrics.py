"""Metrics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from u2adcore.evaluation.metrics import (
    Counts,
    confusion,
    dice,
    mean_std,
    patient_counts,
    pixel_auprc,
    pixel_auroc,
    reconstruction_metrics,
    segment_counts,
    top_segment,
)


def test_counts_ratios():
    c = Counts(tp=3, fp=1, fn=2, tn=4)
    assert c.accuracy == pytest.approx(0.7)
    assert c.precision == pytest.approx(0.75)
    assert c.recall == pytest.approx(0.6)
    assert c.specificity == pytest.approx(0.8)
    assert c.f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))


def test_undefined_ratios_are_nan():
    c = Counts(tp=0, fp=0, fn=0, tn=5)
    assert math.isnan(c.recall) and math.isnan(c.f1) and math.isnan(c.precision)
    assert c.specificity == 1.0 and c.false_positive_rate == 0.0


def test_confusion_and_patient_rule_is_strictly_exceeds():
    assert confusion([1, 0, 1, 0], [1, 1, 0, 0]) == Counts(tp=1, fp=1, fn=1, tn=1)
    c = patient_counts([0.5, 0.5, 0.2], [1, 0, 0], threshold=0.5)
    assert c == Counts(tp=0, fp=0, fn=1, tn=2)  # equal to the threshold is not exceeding it
    with pytest.raises(ValueError, match="differ in shape"):
        confusion([1, 0], [1])


def test_segment_counts_wrong_segment_is_fp_and_fn():
    top = [0.9, 0.8, 0.2, 0.7, 0.1]
    correct = [True, False, True, False, False]
    positive = [True, True, True, False, False]
    c = segment_counts(top, correct, positive, 0.5)
    # study 0 hit; study 1 called on the wrong segment (FP and FN); study 2 missed (FN);
    # study 3 normal but called (FP); study 4 normal, quiet (TN)
    assert c == Counts(tp=1, fp=2, fn=2, tn=1)
    assert c.specificity == pytest.approx(1 / 3)  # the mislocalised call counts against it
    with pytest.raises(ValueError, match="marked correct"):
        segment_counts([0.9], [True], [False], 0.5)


def test_top_segment_skips_unscored_and_keeps_order_on_ties():
    assert top_segment({"C2-C3": None, "C3-C4": 0.4, "C4-C5": 0.4, "C5-C6": 0.1}) == ("C3-C4", 0.4)
    assert top_segment({"C2-C3": None}) is None


def test_pixel_auroc_and_auprc_hand_values():
    truth = np.array([1, 0, 1, 0], bool)
    assert pixel_auroc([0.9, 0.1, 0.8, 0.2], truth) == 1.0
    assert pixel_auroc([0.1, 0.9, 0.2, 0.8], truth) == 0.0
    # ranking T F T F: AP = 0.5 * 1 + 0.5 * 2/3
    assert pixel_auprc([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(0.5 + 1 / 3)
    assert math.isnan(pixel_auroc([0.1, 0.2], [0, 0]))
    assert math.isnan(pixel_auprc([0.1, 0.2], [0, 0]))


def test_dice_hand_values():
    truth = np.zeros(100, bool)
    truth[:10] = True
    assert dice(truth, truth) == 1.0
    assert dice(truth[::-1], truth) == 0.0
    assert dice(truth, np.r_[np.ones(5, bool), np.zeros(95, bool)]) == pytest.approx(10 / 15)
    assert math.isnan(dice(np.zeros(3, bool), np.zeros(3, bool)))


def test_reconstruction_metrics_inside_roi():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.2, 0.8, (32, 32))
    roi = np.zeros((32, 32), bool)
    roi[8:24, 12:20] = True
    same = reconstruction_metrics(image, image, roi, eu=np.full((32, 32), 0.01))
    assert same["ssim"] == pytest.approx(1.0) and same["mse"] == 0.0 and same["psnr"] == math.inf
    assert same["eu"] == pytest.approx(0.01)
    shifted = np.where(roi, image + 0.1, image)
    m = reconstruction_metrics(image, shifted, roi)
    assert m["mse"] == pytest.approx(0.01)
    assert m["psnr"] == pytest.approx(20.0)
    assert m["ssim"] < 1.0 and "eu" not in m
    with pytest.raises(ValueError, match="empty ROI"):
        reconstruction_metrics(image, image, np.zeros_like(roi))


def test_mean_std_skips_undefined_folds():
    mean, std, n = mean_std([0.5, np.nan, 0.7])
    assert (mean, n) == (pytest.approx(0.6), 2) and std == pytest.approx(0.1)
    assert mean_std([np.nan])[2] == 0
