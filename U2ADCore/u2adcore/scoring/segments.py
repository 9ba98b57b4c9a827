"""Segment and patient scores from the AnoCurve, and their verdicts (METHOD.md §6-§7).

A segment (C2-C3 ... C7-T1) is a span of grid rows given by the levels module. Unknown levels
stay unknown: such a segment is listed with no score rather than guessed, so a reader never
mistakes an invented border for a measurement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from ..config import SEGMENTS, ScoringConfig, Thresholds
from .curve import AnoCurve, anocurve
from .maps import analysis_roi, anomaly_map, postprocess


@dataclass(frozen=True)
class SegmentScore:
    """One segment's score. Rows are half-open [start_row, end_row) in the 256 grid."""

    name: str
    score: Optional[float]  # None when unknown or when no cord lies in the span
    known: bool
    start_row: Optional[float] = None
    end_row: Optional[float] = None
    start_mm: Optional[float] = None  # along the cord, from the top of the analysed cord
    end_mm: Optional[float] = None
    positive: Optional[bool] = None  # only with a calibrated segment threshold

    def to_json(self, with_verdict: bool) -> dict:
        out = {"name": self.name, "score": self.score, "known": self.known, "start_mm": self.start_mm, "end_mm": self.end_mm}
        if with_verdict:
            out["positive"] = self.positive
        return out


def samples_in_span(curve: AnoCurve, span: tuple[float, float]) -> np.ndarray:
    """Bool mask of curve samples whose row lies in the half-open span, so that neighbouring
    segments sharing a border never both claim the same position."""
    lo, hi = sorted(span)
    return (curve.rows >= lo) & (curve.rows < hi)


def segment_scores(
    curve: AnoCurve,
    rows_by_segment: Mapping[str, Optional[tuple[float, float]]],
    thresholds: Optional[Thresholds] = None,
) -> list[SegmentScore]:
    """Peak of the AnoCurve inside each of config.SEGMENTS, in anatomical order.

    `rows_by_segment` is levels.segment_rows' output (None or a missing name = unknown). With a
    calibrated `thresholds.segment`, each scored segment gets positive = score > threshold.
    """
    threshold = thresholds.segment if thresholds is not None else None
    out = []
    for name in SEGMENTS:
        span = rows_by_segment.get(name)
        if span is None:
            out.append(SegmentScore(name=name, score=None, known=False))
            continue
        lo, hi = sorted(float(v) for v in span)
        inside = samples_in_span(curve, (lo, hi))
        score = float(curve.values[inside].max()) if inside.any() else None
        positive = None if threshold is None or score is None else bool(score > threshold)
        out.append(
            SegmentScore(
                name=name,
                score=score,
                known=True,
                start_row=lo,
                end_row=hi,
                start_mm=curve.position_of_row(lo),
                end_mm=curve.position_of_row(hi),
                positive=positive,
            )
        )
    return out


def patient_score(curve: AnoCurve) -> float:
    """Peak of the AnoCurve over the whole cord."""
    if len(curve) == 0:
        raise ValueError("empty AnoCurve: no cord in the analysed slice")
    return float(curve.values.max())


def patient_verdict(score: float, thresholds: Optional[Thresholds]) -> Optional[bool]:
    """positive = score > calibrated patient threshold; None when the model carries none."""
    if thresholds is None or thresholds.patient is None:
        return None
    return bool(score > thresholds.patient)


def segment_of_samples(curve: AnoCurve, segments: list[SegmentScore]) -> list[str]:
    """The segment each curve sample belongs to ("" outside every known segment), for curve.csv."""
    names = [""] * len(curve)
    for seg in segments:
        if seg.known:
            for i in np.flatnonzero(samples_in_span(curve, (seg.start_row, seg.end_row))):
                names[i] = seg.name
    return names


def top_segment(segments: list[SegmentScore]) -> Optional[SegmentScore]:
    """The highest-scoring scored segment (the paper's segment-level call), None if none is scored."""
    scored = [s for s in segments if s.score is not None]
    return max(scored, key=lambda s: s.score) if scored else None


@dataclass(frozen=True)
class ScoredSlice:
    """Everything METHOD.md §6 derives from one slice, on its 256 grid (what report.png shows)."""

    image: np.ndarray  # float32 [0, 1]
    roi: np.ndarray  # bool, the eroded cord where anomaly values are defined
    error: np.ndarray  # float32, the method's raw error map
    amap: np.ndarray  # float32, post-processed anomaly map
    labels: np.ndarray  # int32 candidate labels 1..k
    curve: AnoCurve
    segments: list[SegmentScore]
    patient_score: float
    patient_positive: Optional[bool]


def score_slice(
    image: np.ndarray,
    error: np.ndarray,
    roi: np.ndarray,
    rows_by_segment: Mapping[str, Optional[tuple[float, float]]],
    cfg: ScoringConfig,
    *,
    spacing_mm: float,
    thresholds: Optional[Thresholds] = None,
) -> ScoredSlice:
    """Map -> post-processing -> AnoCurve -> segment and patient scores (and verdicts) for one slice."""
    roi_a = analysis_roi(roi, cfg.erode_px)
    post = postprocess(anomaly_map(error, roi, cfg.erode_px), roi_a, cfg.bottom_fraction, cfg.top_components)
    curve = anocurve(post.amap, roi_a, spacing_mm=spacing_mm, method=cfg.curve, centreline_sigma_mm=cfg.centreline_sigma_mm)
    score = patient_score(curve)
    return ScoredSlice(
        image=np.asarray(image, dtype=np.float32),
        roi=roi_a,
        error=np.asarray(error, dtype=np.float32),
        amap=post.amap,
        labels=post.labels,
        curve=curve,
        segments=segment_scores(curve, rows_by_segment, thresholds),
        patient_score=score,
        patient_positive=patient_verdict(score, thresholds),
    )
