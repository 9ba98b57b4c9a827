"""Scored studies -> decision thresholds (METHOD.md §7).

With labelled studies (some positive) the paper's rules: patient threshold at a fixed
sensitivity, segment threshold at maximum segment-level F1. With normal studies only, both
thresholds are set at a false-positive rate, which is all that can be promised without lesions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import EvaluationConfig, Thresholds
from .metrics import top_segment
from .thresholds import threshold_at_fpr, threshold_at_sensitivity, threshold_max_f1


@dataclass(frozen=True)
class PixelScores:
    """A study's in-cord pixel scores and lesion truth, flattened over the same cord pixels."""

    scores: np.ndarray  # float32
    lesion: np.ndarray  # bool


@dataclass(frozen=True)
class StudyRecord:
    """Everything calibration and evaluation need from one scored study."""

    id: str
    label: bool  # patient label
    segments: frozenset[str]  # labelled (lesion) segments
    patient_score: float
    segment_scores: dict[str, Optional[float]]  # None = segment not scored (unknown level)
    pixels: Optional[PixelScores] = None  # only where a lesion mask exists
    recon: Optional[dict[str, float]] = None  # ssim/psnr/mse[/eu], only for reconstructing methods

    @property
    def top(self) -> Optional[tuple[str, float]]:
        return top_segment(self.segment_scores)


@dataclass(frozen=True)
class SegmentTable:
    """Per-study arrays for the segment-level rule, over the studies with a scored segment."""

    top_scores: np.ndarray
    correct: np.ndarray
    positive: np.ndarray


def segment_table(records: list[StudyRecord]) -> SegmentTable:
    """Studies without a scored segment, and positive studies whose lesion segments are not
    labelled, cannot be judged at segment level and are left out."""
    tops = [(r, r.top) for r in records if r.segments or not r.label]
    tops = [(r, t) for r, t in tops if t is not None]
    return SegmentTable(
        top_scores=np.array([t[1] for _, t in tops], dtype=np.float64),
        correct=np.array([t[0] in r.segments for r, t in tops], dtype=bool),
        positive=np.array([bool(r.segments) for r, _ in tops], dtype=bool),
    )


def choose_thresholds(records: list[StudyRecord], cfg: EvaluationConfig) -> Thresholds:
    """Patient and segment thresholds from `records` (labelled when any is positive, else normal-only)."""
    if not records:
        raise ValueError("no scored studies to calibrate on")
    scores = np.array([r.patient_score for r in records], dtype=np.float64)
    labels = np.array([r.label for r in records], dtype=bool)
    seg = segment_table(records)
    if labels.any():
        patient = threshold_at_sensitivity(scores, labels, cfg.patient_sensitivity)
        segment = threshold_max_f1(seg.top_scores, seg.correct, seg.positive) if seg.positive.any() else None
        method = f"patient: sensitivity>={cfg.patient_sensitivity:g}; segment: max F1"
        target = f"{int(labels.sum())} positive / {int((~labels).sum())} normal studies"
    else:
        patient = threshold_at_fpr(scores, cfg.normal_fpr)
        segment = threshold_at_fpr(seg.top_scores, cfg.normal_fpr) if seg.top_scores.size else None
        method = f"normal-only: false-positive rate<={cfg.normal_fpr:g}"
        target = f"{len(records)} normal studies"
    return Thresholds(patient=patient, segment=segment, method=method, n_studies=len(records), target=target)
