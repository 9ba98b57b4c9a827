"""Calibration on healthy cords only (issue 9): the normative scale, the patient and segment
thresholds at a healthy false-positive rate, and the pixel threshold of the candidates.

Inference runs once per study (`infer_studies`); everything after it is scoring, so the same
cached maps can be calibrated and rescored many times (leave-one-subject-out in
benchmarks/verdict_benchmark.py) through `scoring.segments.score_slice`, exactly what
`u2ad detect` does after its inference.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..config import Thresholds, U2ADConfig
from ..methods.base import MethodMaps
from ..scoring.maps import analysis_roi, healthy_spread
from ..scoring.segments import ScoredSlice, score_slice, scoring_signature, top_segment
from .thresholds import threshold_at_fpr

SPREAD_DEPTHS = 6  # depths into the eroded cord with their own healthy spread; deeper share the last


@dataclass
class InferredStudy:
    """One study's scored slice after inference: what scoring needs to run again."""

    id: str
    subject: str
    image: np.ndarray
    roi: np.ndarray  # the cord on the grid (un-eroded)
    lesion: Optional[np.ndarray]
    maps: MethodMaps
    rows_by_segment: dict


def infer_studies(items: Sequence[tuple], method, cfg: U2ADConfig) -> list[InferredStudy]:
    """(study, slice_index, subject) items -> InferredStudy, one method call per study on its scored
    slice (`slice_index` None: the slices cfg.preprocess selects, scored on the one with most cord, as detect does)."""
    from ..detect import _segment_rows, check_roi_patches, scored_slice_position
    from ..volume.preprocess import prepare_slices

    out = []
    for study, slice_index, subject in items:
        pre = cfg.preprocess if slice_index is None else dataclasses.replace(cfg.preprocess, slices=[slice_index])
        slices = prepare_slices(study, pre)
        prepared = slices[scored_slice_position(slices)]
        check_roi_patches([prepared], cfg.model.patch_size, study.cord_path)
        (maps,) = method.maps([prepared])
        out.append(InferredStudy(study.id, subject, prepared.image, prepared.roi, prepared.lesion, maps,
                                 _segment_rows(study, prepared)))
    return out


def rescore(s: InferredStudy, cfg: U2ADConfig, thresholds: Optional[Thresholds]) -> ScoredSlice:
    return score_slice(s.image, s.maps.error, s.roi, s.rows_by_segment, cfg.scoring, spacing_mm=cfg.preprocess.spacing_mm,
                       thresholds=thresholds, residual=s.maps.residual)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sensible at 0 or n successes, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def calibrate_healthy(
    studies: Sequence[InferredStudy],
    cfg: U2ADConfig,
    *,
    patient_fpr: float = 0.05,
    segment_fpr: float = 0.05,
    pixel_fpr: float = 0.01,
) -> Thresholds:
    """Thresholds from healthy studies only: the normative spread per depth, then (scored with it)
    the patient threshold at `patient_fpr` of the studies, the segment threshold at `segment_fpr`
    of the studies' top segment scores, and the pixel threshold at `pixel_fpr` of the healthy
    eroded-cord pixels. Studies must carry a signed residual for the spread (else none is set)."""
    if not studies:
        raise ValueError("no healthy studies to calibrate on")
    with_residual = [s for s in studies if s.maps.residual is not None]
    spread = None
    if with_residual and cfg.scoring.residual == "normative" and cfg.scoring.residual_scale == "healthy":
        spread = healthy_spread([s.maps.residual for s in with_residual], [s.roi for s in with_residual],
                                cfg.scoring.erode_px, SPREAD_DEPTHS, cfg.scoring.residual_centre, cfg.scoring.centre_window_px)
    scaled = Thresholds(residual_spread=spread)
    scored = [rescore(s, cfg, scaled) for s in studies]
    patient = threshold_at_fpr([sc.patient_score for sc in scored], patient_fpr)
    tops = [t.score for t in (top_segment(sc.segments) for sc in scored) if t is not None]
    segment = threshold_at_fpr(tops, segment_fpr) if tops else None
    pixels = np.concatenate([sc.amap[sc.roi] for sc in scored])
    pixel = float(np.quantile(pixels, 1.0 - pixel_fpr)) if pixels.size else None
    subjects = sorted({s.subject for s in studies})
    return Thresholds(
        patient=patient,
        segment=segment,
        pixel=pixel,
        residual_spread=spread,
        method=f"normal-only: false-positive rate<={patient_fpr:g} (patient), <={segment_fpr:g} (segment), "
               f"{pixel_fpr:g} of healthy cord pixels (pixel)",
        n_studies=len(studies),
        target=f"{len(studies)} healthy studies from {len(subjects)} subjects",
        calibration={
            "subjects": subjects,
            "studies": [s.id for s in studies],
            "n_studies": len(studies),
            "n_segment_studies": len(tops),
            "n_pixels": int(pixels.size),
            "patient_fpr": patient_fpr,
            "segment_fpr": segment_fpr,
            "pixel_fpr": pixel_fpr,
            "scoring": scoring_signature(cfg.scoring, cfg.inference),
        },
    )


def leave_one_subject_out(studies: Sequence[InferredStudy], cfg: U2ADConfig, **fprs) -> dict[str, Thresholds]:
    """subject -> thresholds calibrated on the healthy studies of every other subject."""
    subjects = sorted({s.subject for s in studies})
    return {subj: calibrate_healthy([s for s in studies if s.subject != subj], cfg, **fprs) for subj in subjects}


def healthy_specificity(studies: Sequence[InferredStudy], cfg: U2ADConfig, **fprs) -> dict:
    """Leave-one-subject-out specificity on healthy studies: thresholds from the other subjects,
    'no' with no candidates on the held-out one. Real subjects only make the folds; studies of
    subject "phantom" are always in the calibration set."""
    real = sorted({s.subject for s in studies if s.subject != "phantom"})
    quiet, n, per_subject = 0, 0, {}
    for subj in real:
        th = calibrate_healthy([s for s in studies if s.subject != subj], cfg, **fprs)
        held = [rescore(s, cfg, th) for s in studies if s.subject == subj]
        ok = sum(1 for sc in held if sc.patient_positive is False and sc.labels.max() == 0)
        per_subject[subj] = f"{ok}/{len(held)}"
        quiet, n = quiet + ok, n + len(held)
    lo, hi = wilson_interval(quiet, n)
    return {"specificity": quiet / n if n else None, "ci95": [round(lo, 3), round(hi, 3)], "n": n,
            "per_subject": per_subject, "protocol": "leave-one-subject-out over the real subjects"}
