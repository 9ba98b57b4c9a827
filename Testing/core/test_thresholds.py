"""Threshold rules on hand-made score lists: exact values, ties, targets met."""
from __future__ import annotations

import numpy as np
import pytest

from u2adcore.evaluation.metrics import dice, patient_counts, segment_counts
from u2adcore.evaluation.thresholds import (
    best_dice_threshold,
    candidate_thresholds,
    threshold_at_fpr,
    threshold_at_sensitivity,
    threshold_max_f1,
)


def test_candidates_are_below_min_midpoints_and_max():
    c = candidate_thresholds([3.0, 1.0, 2.0, 2.0])
    assert c[0] < 1.0 and c[0] == np.nextafter(1.0, -np.inf)
    np.testing.assert_array_equal(c[1:], [1.5, 2.5, 3.0])


def test_candidates_refuse_empty_and_nonfinite():
    with pytest.raises(ValueError, match="no scores"):
        candidate_thresholds([])
    with pytest.raises(ValueError, match="finite"):
        candidate_thresholds([0.1, np.nan])


def test_sensitivity_threshold_is_highest_meeting_target():
    pos = np.round(np.arange(10) * 0.1, 2)  # 0.0 .. 0.9
    neg = np.array([0.05, 0.35, 0.95])
    scores = np.concatenate([pos, neg])
    labels = np.r_[np.ones(10, bool), np.zeros(3, bool)]
    t = threshold_at_sensitivity(scores, labels, 0.9)
    assert t == pytest.approx(0.075)  # between the 9th positive (0.1) and the next score (0.05)
    assert patient_counts(scores, labels, t).recall == pytest.approx(0.9)
    # any higher candidate loses sensitivity below the target
    higher = candidate_thresholds(scores)
    higher = higher[higher > t]
    assert all(patient_counts(scores, labels, h).recall < 0.9 for h in higher)


def test_sensitivity_threshold_with_ties_across_labels():
    scores = [0.5, 0.5, 0.5, 0.5, 0.3, 0.5, 0.1]
    labels = [1, 1, 1, 1, 1, 0, 0]
    t = threshold_at_sensitivity(scores, labels, 0.8)
    assert t == pytest.approx(0.4)
    counts = patient_counts(scores, labels, t)
    assert counts.recall == pytest.approx(0.8) and counts.fp == 1  # the tied normal cannot be separated
    # 100 % needs the lowest positive too
    assert threshold_at_sensitivity(scores, labels, 1.0) == pytest.approx(0.2)


def test_sensitivity_threshold_below_all_scores_when_needed():
    t = threshold_at_sensitivity([0.2, 0.2, 0.9], [1, 1, 0], 0.9)
    assert t < 0.2 and patient_counts([0.2, 0.2, 0.9], [1, 1, 0], t).recall == 1.0


def test_sensitivity_needs_a_positive_and_a_valid_target():
    with pytest.raises(ValueError, match="no positive studies"):
        threshold_at_sensitivity([0.1, 0.2], [0, 0], 0.9)
    with pytest.raises(ValueError, match="sensitivity must be in"):
        threshold_at_sensitivity([0.1, 0.2], [1, 0], 0.0)


def test_fpr_threshold_exact():
    normals = np.arange(20, dtype=float)
    t = threshold_at_fpr(normals, 0.05)
    assert t == pytest.approx(18.5)
    assert np.mean(normals > t) == pytest.approx(0.05)
    assert threshold_at_fpr(normals, 0.0) == 19.0
    assert threshold_at_fpr(normals, 0.10) == pytest.approx(17.5)


def test_fpr_threshold_with_ties_stays_within_target():
    normals = [1.0, 2.0, 3.0, 3.0]
    t = threshold_at_fpr(normals, 0.25)
    assert t == 3.0  # the two tied maxima cannot be split, so none may exceed
    assert np.mean(np.array(normals) > t) <= 0.25
    with pytest.raises(ValueError, match="false-positive rate"):
        threshold_at_fpr(normals, 1.0)


def test_max_f1_threshold_hand_computed():
    top = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    correct = [True, False, True, False, False, False]
    positive = [True, True, True, False, False, False]
    # F1 by hand: t=0.85 -> 0.5, 0.75 -> 0.4, 0.65 -> 2/3, 0.55 -> 4/7, 0.45 -> 0.5
    t = threshold_max_f1(top, correct, positive)
    assert t == pytest.approx(0.65)
    assert segment_counts(top, correct, positive, t).f1 == pytest.approx(2 / 3)


def test_max_f1_ties_pick_the_highest_threshold():
    top = [0.9, 0.8, 0.7, 0.6]
    correct = [True, False, False, True]
    positive = [True, False, False, True]
    # t=0.85: TP1 FN1 -> 2/3 ; t=0.65: TP1 FP2 FN1 -> 2/5 ; t<0.6: TP2 FP2 -> 2/3 (tie with 0.85)
    t = threshold_max_f1(top, correct, positive)
    assert t == pytest.approx(0.85)


def test_max_f1_needs_positives():
    with pytest.raises(ValueError, match="no positive studies"):
        threshold_max_f1([0.1, 0.2], [False, False], [False, False])


def test_best_dice_threshold_exact_search():
    truth = np.zeros(100, bool)
    truth[:10] = True
    scores = np.where(truth, 0.8, 0.1) + np.linspace(0, 0.05, 100)
    t = best_dice_threshold(scores, truth)
    assert 0.15 < t < 0.8 and dice(scores > t, truth) == 1.0
    # overlapping classes: compare against a brute-force search over all candidates
    rng = np.random.default_rng(1)
    truth = rng.random(300) < 0.1
    scores = rng.normal(truth * 1.0, 1.0)
    t = best_dice_threshold(scores, truth)
    brute = max(dice(scores > c, truth) for c in candidate_thresholds(scores))
    assert dice(scores > t, truth) == pytest.approx(brute)
    with pytest.raises(ValueError, match="no lesion pixels"):
        best_dice_threshold(scores, np.zeros(300, bool))
