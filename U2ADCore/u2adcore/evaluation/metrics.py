"""Patient, segment, pixel and reconstruction metrics (METHOD.md §7), pure functions over arrays.

Decision rule everywhere: a score is called anomalous when it *exceeds* the threshold
(`exceeds`). Undefined ratios (e.g. specificity of a set without normals) are NaN, never 0 or 1,
so that averages over folds can skip them instead of being biased by them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


def exceeds(scores, threshold: float) -> np.ndarray:
    """The decision rule shared by calibration, evaluation and detection verdicts."""
    return np.asarray(scores, dtype=np.float64) > threshold


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


@dataclass(frozen=True)
class Counts:
    """A confusion matrix; the ratios derived from it are NaN when their denominator is 0."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.tp + self.fp + self.fn + self.tn)

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def false_positive_rate(self) -> float:
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


def confusion(predicted, truth) -> Counts:
    predicted = np.asarray(predicted, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"predictions {predicted.shape} and labels {truth.shape} differ in shape")
    return Counts(
        tp=int(np.sum(predicted & truth)),
        fp=int(np.sum(predicted & ~truth)),
        fn=int(np.sum(~predicted & truth)),
        tn=int(np.sum(~predicted & ~truth)),
    )


def patient_counts(scores, labels, threshold: float) -> Counts:
    """Patient level: a study is positive when its patient score exceeds `threshold`."""
    return confusion(exceeds(scores, threshold), labels)


def segment_counts(top_scores, correct, positive, threshold: float) -> Counts:
    """Segment level (paper §4.2): each study's highest-scoring segment is called anomalous when
    its score exceeds `threshold`; one decision per study.

    `correct[i]`: study i's top segment is one of its labelled segments; `positive[i]`: study i
    has a labelled segment. TP = a call on a labelled segment; a call on an unlabelled segment is
    a FP, and in a positive study also a miss (FN), because the lesion's segment was not found;
    TN = a normal study left uncalled. Specificity = TN / (TN + FP) therefore also charges
    mislocalised calls in positive studies.
    """
    called = exceeds(top_scores, threshold)
    correct = np.asarray(correct, dtype=bool)
    positive = np.asarray(positive, dtype=bool)
    if np.any(correct & ~positive):
        raise ValueError("a study's top segment is marked correct but the study has no labelled segment")
    hit = called & correct
    return Counts(
        tp=int(np.sum(hit)),
        fp=int(np.sum(called & ~correct)),
        fn=int(np.sum(positive & ~hit)),
        tn=int(np.sum(~positive & ~called)),
    )


def top_segment(segment_scores: dict[str, Optional[float]]) -> Optional[tuple[str, float]]:
    """The highest-scoring segment (first in order on ties), or None when no segment was scored."""
    scored = [(name, float(s)) for name, s in segment_scores.items() if s is not None and np.isfinite(s)]
    if not scored:
        return None
    return max(scored, key=lambda item: item[1])


def pixel_auroc(scores, truth) -> float:
    """Area under the ROC curve of pixel scores against the lesion mask; NaN without both classes."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(truth, dtype=bool).ravel()
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, np.asarray(scores, dtype=np.float64).ravel()))


def pixel_auprc(scores, truth) -> float:
    """Average precision (area under the precision-recall curve); NaN without lesion pixels.

    The chance level is the lesion fraction, not 0.5, which is why it separates methods better
    than AUROC when lesions are a few percent of the cord.
    """
    from sklearn.metrics import average_precision_score

    truth = np.asarray(truth, dtype=bool).ravel()
    if not truth.any():
        return float("nan")
    return float(average_precision_score(truth, np.asarray(scores, dtype=np.float64).ravel()))


def dice(predicted, truth) -> float:
    """2|A∩B| / (|A| + |B|); NaN when both are empty."""
    predicted = np.asarray(predicted, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    return _ratio(2 * int(np.sum(predicted & truth)), int(predicted.sum() + truth.sum()))


def reconstruction_metrics(image, recon, roi, eu=None) -> dict[str, float]:
    """SSIM, PSNR, MSE of `recon` against `image` inside `roi` (intensities in [0, 1]), and the
    mean epistemic uncertainty there when `eu` is given.

    SSIM is the mean of skimage's local SSIM map over the ROI pixels, so the background (which
    every method reproduces by construction) cannot inflate it.
    """
    from skimage.metrics import structural_similarity

    image = np.asarray(image, dtype=np.float64)
    recon = np.asarray(recon, dtype=np.float64)
    roi = np.asarray(roi, dtype=bool)
    if not roi.any():
        raise ValueError("empty ROI: reconstruction metrics are defined inside the cord")
    _, ssim_map = structural_similarity(image, recon, data_range=1.0, full=True)
    mse = float(np.mean((image[roi] - recon[roi]) ** 2))
    out = {
        "ssim": float(ssim_map[roi].mean()),
        "psnr": float(10.0 * np.log10(1.0 / mse)) if mse > 0 else float("inf"),
        "mse": mse,
    }
    if eu is not None:
        out["eu"] = float(np.asarray(eu, dtype=np.float64)[roi].mean())
    return out


def mean_std(values) -> tuple[float, float, int]:
    """Mean and population std over the finite values (folds where a metric is defined), and their count."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan"), 0
    return float(finite.mean()), float(finite.std()), int(finite.size)
