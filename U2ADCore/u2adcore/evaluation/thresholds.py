"""Decision thresholds chosen from scored studies (METHOD.md §7), pure functions over arrays.

A study (or its top segment) is called anomalous when its score *exceeds* the threshold
(`score > t`, the paper's wording). Thresholds are placed half-way between neighbouring distinct
scores, never on a score itself: a threshold equal to a training score would decide a tied unseen
score by floating-point luck, and the midpoint is the least-committal choice between two
observations. Ties between scores are handled by working on distinct values only.
"""
from __future__ import annotations

import numpy as np

from .metrics import patient_counts, segment_counts


def candidate_thresholds(scores) -> np.ndarray:
    """Every threshold that gives a different decision on `scores`, ascending.

    Below the minimum (everything called), the midpoints between consecutive distinct scores,
    and the maximum itself (nothing exceeds it).
    """
    values = np.unique(np.asarray(scores, dtype=np.float64))
    if values.size == 0:
        raise ValueError("no scores to choose a threshold from")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite")
    below = np.nextafter(values[0], -np.inf)
    return np.concatenate([[below], (values[:-1] + values[1:]) / 2.0, [values[-1]]])


def threshold_at_sensitivity(scores, labels, sensitivity: float) -> float:
    """The highest threshold whose sensitivity on the positives is at least `sensitivity`.

    Highest, because among all thresholds that meet the sensitivity target it calls the fewest
    negatives positive (the paper fixes patient-level sensitivity at 0.9).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if not 0.0 < sensitivity <= 1.0:
        raise ValueError(f"sensitivity must be in (0, 1], got {sensitivity}")
    if not labels.any():
        raise ValueError("no positive studies: a sensitivity target needs at least one")
    cands = candidate_thresholds(scores)
    sens = np.array([patient_counts(scores, labels, t).recall for t in cands])
    return float(cands[np.flatnonzero(sens >= sensitivity)[-1]])


def threshold_at_fpr(scores, fpr: float) -> float:
    """The lowest threshold that normal studies (all of `scores`) exceed at most a fraction `fpr` of the time."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"false-positive rate must be in [0, 1), got {fpr}")
    cands = candidate_thresholds(scores)
    normal = np.zeros(scores.shape, dtype=bool)
    rate = np.array([patient_counts(scores, normal, t).false_positive_rate for t in cands])
    return float(cands[np.flatnonzero(rate <= fpr)[0]])


def threshold_max_f1(top_scores, correct, positive) -> float:
    """The threshold maximising segment-level F1 (see `metrics.segment_counts`); among equal F1
    the highest (fewest calls)."""
    top_scores = np.asarray(top_scores, dtype=np.float64)
    if not np.asarray(positive, dtype=bool).any():
        raise ValueError("no positive studies: F1 is undefined without labelled segments")
    cands = candidate_thresholds(top_scores)
    f1 = np.array([segment_counts(top_scores, correct, positive, t).f1 for t in cands])
    f1 = np.nan_to_num(f1, nan=-1.0)
    return float(cands[np.flatnonzero(f1 == f1.max())[-1]])


def best_dice_threshold(scores, truth) -> float:
    """The pixel threshold maximising Dice of `scores > t` against `truth` (the highest on ties).

    Exact over every candidate: with the scores sorted, the pixels called and the lesion pixels
    among them at each candidate are counts from `searchsorted`, O(n log n) for n pixels.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(truth, dtype=bool).ravel()
    if not truth.any():
        raise ValueError("no lesion pixels to choose a Dice threshold from")
    cands = candidate_thresholds(scores)
    called = scores.size - np.searchsorted(np.sort(scores), cands, side="right")
    hits = truth.sum() - np.searchsorted(np.sort(scores[truth]), cands, side="right")
    values = 2.0 * hits / (called + truth.sum())
    return float(cands[np.flatnonzero(values == values.max())[-1]])
