"""Segment and patient scores from the AnoCurve, and their verdicts (METHOD.md §6-§7).

A segment (C2-C3 ... C7-T1) is a span of grid rows given by the levels module. Unknown levels
stay unknown: such a segment is listed with no score rather than guessed, so a reader never
mistakes an invented border for a measurement.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from ..config import SEGMENTS, InferenceConfig, ScoringConfig, Thresholds
from .curve import AnoCurve, anocurve
from .maps import analysis_roi, anomaly_map, normative_map, postprocess, threshold_candidates


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


def patient_score(curve: AnoCurve, segments: Optional[list[SegmentScore]] = None) -> float:
    """Peak of the AnoCurve over the scored segments C2-C3 ... C7-T1 when `segments` holds any
    (a peak in the brainstem or thoracic cord is not the cervical finding), else over the whole cord."""
    if len(curve) == 0:
        raise ValueError("empty AnoCurve: no cord in the analysed slice")
    scored = [s.score for s in segments or [] if s.score is not None]
    return float(max(scored)) if scored else float(curve.values.max())


# The scoring settings a threshold's value depends on: recorded with every calibration and
# compared before a verdict is given (display_max and the candidate rule change no score). The
# inference mask ratio changes mu, hence every score, and is compared too ("mask_ratio").
THRESHOLD_SCORING_FIELDS = ("residual", "residual_scale", "residual_centre", "centre_window_px", "erode_px", "patient_from", "curve")
# What a calibration made before a setting existed was made with: the only centring then, and the
# model's own mask ratio.
SIGNATURE_BEFORE = {"residual_centre": "slice", "centre_window_px": 31, "mask_ratio": None}


def scoring_signature(cfg: ScoringConfig, inference: InferenceConfig) -> dict:
    """What `thresholds_for` compares: stored as Thresholds.calibration["scoring"]."""
    return {**{name: getattr(cfg, name) for name in THRESHOLD_SCORING_FIELDS}, "mask_ratio": inference.mask_ratio}


def thresholds_for(thresholds: Optional[Thresholds], cfg: ScoringConfig, inference: InferenceConfig) -> tuple[Optional[Thresholds], str]:
    """The thresholds as they apply to scoring with `cfg` after inference with `inference`, and
    why a verdict is withheld ("" if not).

    A threshold is a value on one scoring's scale: the shipped model's 6.8 healthy spreads means
    nothing for the paper's |x - mu|, for another erosion or for another inference mask ratio.
    When the calibration recorded other settings, the patient, segment and pixel thresholds are
    dropped (no verdict, no candidates) rather than applied on the wrong scale; the healthy spread
    is kept, so the map stays in healthy spreads. Calibrations that recorded no scoring are taken
    as they are; settings a calibration did not record take the values they had before they
    existed (`SIGNATURE_BEFORE`: the slice median, the model's own mask ratio).
    """
    if thresholds is None:
        return None, ""
    calibrated = thresholds.calibration.get("scoring")
    if calibrated is None:
        return thresholds, ""
    current = scoring_signature(cfg, inference)
    recorded = {**SIGNATURE_BEFORE, **calibrated}
    differ = [name for name in current if recorded.get(name) != current[name]]
    if not differ:
        return thresholds, ""
    shown = ", ".join(f"{name} {recorded.get(name)!r} (now {current[name]!r})" for name in differ)
    note = (f"no verdict: the model's thresholds were calibrated with {shown}; "
            "recalibrate with `u2ad calibrate` for these settings")
    return dataclasses.replace(thresholds, patient=None, segment=None, pixel=None), note


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
    amap: np.ndarray  # float32, anomaly map (normative; or post-processed in the paper's mode)
    labels: np.ndarray  # int32 candidate labels 1..k
    curve: AnoCurve
    segments: list[SegmentScore]
    patient_score: float
    patient_positive: Optional[bool]


def slice_map(error: np.ndarray, residual: Optional[np.ndarray], roi: np.ndarray, cfg: ScoringConfig,
              thresholds: Optional[Thresholds]) -> np.ndarray:
    """The anomaly map before candidates: the normative residual when the method gives a signed
    residual, else its own (hyperintense) error, kept inside the eroded cord; |error| in the paper's mode."""
    if cfg.residual == "paper":
        return anomaly_map(error, roi, cfg.erode_px)
    if cfg.residual != "normative":
        raise ValueError(f"unknown residual setting {cfg.residual!r} (normative | paper)")
    if residual is None:
        return np.where(analysis_roi(roi, cfg.erode_px), np.maximum(np.asarray(error, dtype=np.float32), 0), np.float32(0))
    spread = None if thresholds is None else thresholds.residual_spread
    return normative_map(residual, roi, cfg.erode_px, cfg.residual_scale, spread, cfg.residual_centre, cfg.centre_window_px)


def candidates(amap: np.ndarray, roi_a: np.ndarray, cfg: ScoringConfig, thresholds: Optional[Thresholds],
               patient_positive: Optional[bool], spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(map, candidate labels). "paper": the post-processed map and its top components. "threshold":
    the map unchanged; components above the calibrated pixel threshold of at least
    cfg.min_candidate_mm2, none in a study called negative and none without a pixel threshold."""
    if cfg.candidates == "paper" or cfg.residual == "paper":
        post = postprocess(amap, roi_a, cfg.bottom_fraction, cfg.top_components)
        return (post.amap if cfg.residual == "paper" else amap), post.labels
    if cfg.candidates != "threshold":
        raise ValueError(f"unknown candidates setting {cfg.candidates!r} (threshold | paper)")
    pixel = None if thresholds is None else thresholds.pixel
    if pixel is None or patient_positive is False:
        return amap, np.zeros(amap.shape, dtype=np.int32)
    min_pixels = int(np.ceil(cfg.min_candidate_mm2 / spacing_mm**2))
    return amap, threshold_candidates(amap, roi_a, pixel, min_pixels, cfg.top_components)


def score_slice(
    image: np.ndarray,
    error: np.ndarray,
    roi: np.ndarray,
    rows_by_segment: Mapping[str, Optional[tuple[float, float]]],
    cfg: ScoringConfig,
    *,
    spacing_mm: float,
    thresholds: Optional[Thresholds] = None,
    residual: Optional[np.ndarray] = None,
) -> ScoredSlice:
    """Map -> AnoCurve -> segment and patient scores (and verdicts) -> candidates, for one slice.

    In the paper's mode the AnoCurve is taken on the post-processed map, as published; by default
    on the whole normative map, so that candidates (a display of where) never change the scores.
    """
    roi_a = analysis_roi(roi, cfg.erode_px)
    amap = slice_map(error, residual, roi, cfg, thresholds)
    if cfg.residual == "paper":
        amap, labels = candidates(amap, roi_a, cfg, thresholds, None, spacing_mm)
    curve = anocurve(amap, roi_a, spacing_mm=spacing_mm, method=cfg.curve, centreline_sigma_mm=cfg.centreline_sigma_mm)
    segments = segment_scores(curve, rows_by_segment, thresholds)
    score = patient_score(curve, segments if cfg.patient_from == "segments" else None)
    positive = patient_verdict(score, thresholds)
    if cfg.residual != "paper":
        amap, labels = candidates(amap, roi_a, cfg, thresholds, positive, spacing_mm)
    return ScoredSlice(
        image=np.asarray(image, dtype=np.float32),
        roi=roi_a,
        error=np.asarray(error, dtype=np.float32),
        amap=amap,
        labels=labels,
        curve=curve,
        segments=segments,
        patient_score=score,
        patient_positive=positive,
    )
