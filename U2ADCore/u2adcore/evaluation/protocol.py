"""The paper's 5-fold protocol (METHOD.md §7): thresholds chosen on four folds, applied to the
fifth, every metric reported as mean ± std over folds.

Choosing thresholds on the studies they are then judged on would flatter every method; keeping
each fold's thresholds blind to it is what makes the numbers comparable between methods.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import EvaluationConfig, Thresholds
from .calibrate import StudyRecord, choose_thresholds, segment_table
from .metrics import dice, mean_std, patient_counts, pixel_auprc, pixel_auroc, segment_counts
from .thresholds import best_dice_threshold

# Columns of the paper's Table 1 first (METHOD.md §10), then ours.
METRICS: tuple[str, ...] = (
    "patient_accuracy",
    "patient_f1",
    "patient_specificity",
    "segment_f1",
    "segment_recall",
    "segment_specificity",
    "pixel_auroc",
    "pixel_auprc",
    "pixel_dice",
    "ssim",
    "psnr",
    "mse",
    "eu",
)
HEADERS: dict[str, str] = {
    "patient_accuracy": "patient acc",
    "patient_f1": "patient F1",
    "patient_specificity": "patient spec",
    "segment_f1": "segment F1",
    "segment_recall": "segment recall",
    "segment_specificity": "segment spec",
    "pixel_auroc": "pixel AUROC",
    "pixel_auprc": "pixel AUPRC",
    "pixel_dice": "Dice",
    "ssim": "SSIM",
    "psnr": "PSNR (dB)",
    "mse": "MSE",
    "eu": "mean EU",
}


def stratified_folds(labels, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) of each study; each label's studies are shuffled with `seed` and
    dealt round-robin, continuing the deal across labels so fold sizes differ by at most one."""
    labels = np.asarray(labels, dtype=bool)
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n_folds}")
    if labels.size < n_folds:
        raise ValueError(f"{labels.size} studies cannot fill {n_folds} folds")
    rng = np.random.default_rng(seed)
    folds = np.empty(labels.size, dtype=np.int64)
    dealt = 0
    for value in (True, False):
        members = rng.permutation(np.flatnonzero(labels == value))
        folds[members] = (dealt + np.arange(members.size)) % n_folds
        dealt += members.size
    return folds


@dataclass(frozen=True)
class FoldResult:
    fold: int
    test_ids: tuple[str, ...]
    thresholds: Thresholds
    pixel_threshold: Optional[float]
    metrics: dict[str, float]


@dataclass(frozen=True)
class CVResult:
    folds: tuple[FoldResult, ...]

    def summary(self) -> dict[str, tuple[float, float, int]]:
        """metric -> (mean, std, number of folds where it is defined), for metrics any fold has."""
        present = [m for m in METRICS if any(m in f.metrics for f in self.folds)]
        return {m: mean_std([f.metrics.get(m, np.nan) for f in self.folds]) for m in present}


def _pooled_pixels(records: list[StudyRecord]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    with_pixels = [r.pixels for r in records if r.pixels is not None]
    if not with_pixels:
        return None
    return np.concatenate([p.scores for p in with_pixels]), np.concatenate([p.lesion for p in with_pixels])


def fold_metrics(test: list[StudyRecord], thresholds: Thresholds, pixel_threshold: Optional[float]) -> dict[str, float]:
    """Every metric of `test` under thresholds chosen elsewhere."""
    out: dict[str, float] = {}
    scores = np.array([r.patient_score for r in test])
    labels = np.array([r.label for r in test], dtype=bool)
    pc = patient_counts(scores, labels, thresholds.patient)
    out.update(patient_accuracy=pc.accuracy, patient_f1=pc.f1, patient_specificity=pc.specificity)
    seg = segment_table(test)
    if thresholds.segment is not None and seg.top_scores.size:
        sc = segment_counts(seg.top_scores, seg.correct, seg.positive, thresholds.segment)
        out.update(segment_f1=sc.f1, segment_recall=sc.recall, segment_specificity=sc.specificity)
    pooled = _pooled_pixels(test)
    if pooled is not None:
        out.update(pixel_auroc=pixel_auroc(*pooled), pixel_auprc=pixel_auprc(*pooled))
        if pixel_threshold is not None:
            out["pixel_dice"] = dice(pooled[0] > pixel_threshold, pooled[1])
    recon = [r.recon for r in test if r.recon is not None]
    for key in ("ssim", "psnr", "mse", "eu"):
        values = [d[key] for d in recon if key in d]
        if values:
            out[key] = float(np.mean(values))
    return out


def cross_validate(records: list[StudyRecord], cfg: EvaluationConfig) -> CVResult:
    """The protocol over labelled `records` (at least two positive and one normal study)."""
    labels = np.array([r.label for r in records], dtype=bool)
    if labels.sum() < 2 or labels.all():
        raise ValueError(
            f"cross-validation needs at least 2 positive and 1 normal study, got {int(labels.sum())} positive "
            f"of {labels.size}"
        )
    return cross_validate_folds(records, stratified_folds(labels, cfg.n_folds, cfg.seed), cfg)


def cross_validate_folds(records: list[StudyRecord], folds, cfg: EvaluationConfig) -> CVResult:
    """The protocol with the fold of each record given (e.g. grouped by subject, so that no
    subject's studies are on both sides of a threshold)."""
    folds = np.asarray(folds)
    if folds.shape != (len(records),):
        raise ValueError(f"{folds.size} fold indices for {len(records)} records")
    results = []
    for k in np.unique(folds).tolist():
        train = [r for r, f in zip(records, folds) if f != k]
        test = [r for r, f in zip(records, folds) if f == k]
        thresholds = choose_thresholds(train, cfg)
        pooled = _pooled_pixels(train)
        pixel_threshold = (
            best_dice_threshold(*pooled) if pooled is not None and pooled[1].any() else None
        )
        results.append(
            FoldResult(
                fold=k,
                test_ids=tuple(r.id for r in test),
                thresholds=thresholds,
                pixel_threshold=pixel_threshold,
                metrics=fold_metrics(test, thresholds, pixel_threshold),
            )
        )
    return CVResult(folds=tuple(results))


def format_mean_std(mean: float, std: float, n: int) -> str:
    """Three decimals like the paper; values too small for that (mean EU) in scientific notation."""
    if n == 0:
        return "–"
    if mean != 0 and abs(mean) < 1e-3:
        return f"{mean:.2e} ± {std:.1e}"
    return f"{mean:.3f} ± {std:.3f}"


def markdown_table(results: dict[str, CVResult]) -> str:
    """One row per method, laid out like the paper's Table 1 (METHOD.md §10), then pixel and
    reconstruction columns for the metrics any method has."""
    summaries = {name: res.summary() for name, res in results.items()}
    columns = [m for m in METRICS if any(m in s for s in summaries.values())]
    lines = [
        "| method | " + " | ".join(HEADERS[m] for m in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, summary in summaries.items():
        cells = [format_mean_std(*summary.get(m, (np.nan, np.nan, 0))) for m in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
