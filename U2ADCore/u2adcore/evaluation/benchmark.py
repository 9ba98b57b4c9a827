"""The reusable parts of the subject-disjoint pseudo-lesion benchmark (docs/RESULTS.md):
the study set's unit (`BenchStudy`), folds grouped by subject, the adaptation sample that keeps
every scored subject out, scoring through `detect_study`, and the tables.

Why grouped by subject: a slice's healthy copy, its lesioned copy and its neighbouring slices are
near-duplicates. If adaptation (strategies 2/3) or threshold selection sees any of them, the
method is partly judged on what it trained on. So every subject's studies sit in one fold, and
the model that scores a fold adapted only on studies of subjects outside it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..config import EvaluationConfig, U2ADConfig
from .calibrate import StudyRecord, Truth, score_study
from .protocol import HEADERS, CVResult, cross_validate_folds, format_mean_std


@dataclass
class BenchStudy:
    """One scored study: a study, the slice that is scored, its truth and where it comes from."""

    study: object  # io.study.Study
    truth: Truth
    slice_index: int  # canonical left-right index
    subject: str
    kind: str  # "real" | "phantom"
    group: str  # breakdown column of a positive study
    pair: str  # subject and slice: the healthy and lesioned copies of one slice share it


def slice_truth(study, slice_index: int, cfg: Optional[U2ADConfig] = None) -> Truth:
    """Labels read off the scored slice: positive when it holds lesion pixels; labelled segments
    are those whose row span (the borders detection scores with) holds any lesion row."""
    from ..levels.levels import segment_rows
    from ..volume.orientation import geometry_only, to_canonical
    from ..volume.preprocess import prepare_slices

    cfg = cfg or U2ADConfig()
    (prepared,) = prepare_slices(study, dataclasses.replace(cfg.preprocess, slices=[slice_index]))
    rows = np.flatnonzero(prepared.lesion.any(axis=1)) if prepared.lesion is not None else np.array([], int)
    segments: frozenset = frozenset()
    if study.levels is not None and rows.size:
        spans = segment_rows(study.levels, prepared, to_canonical(geometry_only(study.image)))
        segments = frozenset(name for name, span in spans.items()
                             if span is not None and np.any((rows >= min(span)) & (rows < max(span))))
    return Truth(label=bool(rows.size), segments=segments)


def subject_folds(kinds: dict[str, str], n_folds: int, seed: int) -> dict[str, int]:
    """Fold of each subject: subjects of each kind shuffled with `seed` and dealt round-robin,
    real subjects first, so every fold holds real subjects when there are enough of them."""
    rng = np.random.default_rng(seed)
    out, dealt = {}, 0
    for kind in sorted(set(kinds.values()), key=lambda k: (k != "real", k)):
        members = [s for s in sorted(kinds) if kinds[s] == kind]
        for j, i in enumerate(rng.permutation(len(members))):
            out[members[i]] = (dealt + j) % n_folds
        dealt += len(members)
    return out


def adaptation_sample(pool: Sequence[BenchStudy], n: int, seed: int) -> list[BenchStudy]:
    """Up to `n` studies of `pool` for adaptation, at most one copy of each slice (so the model
    never sees a lesioned slice together with its healthy copy), drawn with `seed`."""
    rng = np.random.default_rng(seed)
    by_pair: dict[str, list[BenchStudy]] = {}
    for b in pool:
        by_pair.setdefault(b.pair, []).append(b)
    pairs = sorted(by_pair)
    chosen = [pairs[i] for i in rng.permutation(len(pairs))[:n]]
    return [by_pair[p][int(rng.integers(len(by_pair[p])))] for p in chosen]


def score_studies(studies: Sequence[BenchStudy], method, cfg: U2ADConfig) -> list[StudyRecord]:
    """Each study scored on its own slice through detect_study (as `u2ad detect --slices i`)."""
    from ..detect import detection_config

    cfg = detection_config(cfg, method)
    return [score_study(b.study, b.truth, method, dataclasses.replace(
        cfg, preprocess=dataclasses.replace(cfg.preprocess, slices=[b.slice_index]))) for b in studies]


def with_healthy_scale(method, calibration: Sequence[BenchStudy], cfg: U2ADConfig):
    """`method` with the normative scale (ScoringConfig.residual_scale = "healthy") learned from
    its own signed residuals on the healthy `calibration` studies, as `u2ad calibrate` would store
    it with the model; other thresholds are dropped, so every method is scored alike. Methods
    without a signed residual, and other scoring settings, are returned unchanged."""
    from ..config import Thresholds
    from ..detect import detection_config
    from ..scoring.maps import healthy_spread
    from .healthy import SPREAD_DEPTHS, infer_studies

    sc = cfg.scoring
    if sc.residual != "normative" or sc.residual_scale != "healthy" or not calibration:
        return method
    items = [(b.study, b.slice_index, b.subject) for b in calibration]
    cfg = detection_config(cfg, method)
    first = infer_studies(items[:1], method, cfg)
    if first[0].maps.residual is None:  # an error map without a signed residual: nothing to scale
        return method
    inferred = first + infer_studies(items[1:], method, cfg)
    method.thresholds = Thresholds(residual_spread=healthy_spread(
        [s.maps.residual for s in inferred], [s.roi for s in inferred], sc.erode_px, SPREAD_DEPTHS, sc.residual_centre,
        sc.centre_window_px))
    return method


def evaluate(records: list[StudyRecord], folds: Sequence[int], cfg: EvaluationConfig) -> CVResult:
    """The paper's protocol on subject-grouped folds, plus the patient AUROC of each test fold
    (threshold-free; undefined where a fold lacks either class)."""
    from sklearn.metrics import roc_auc_score

    result = cross_validate_folds(records, np.asarray(folds), cfg)
    by_id = {r.id: r for r in records}
    for f in result.folds:
        test = [by_id[i] for i in f.test_ids]
        labels = [r.label for r in test]
        if 0 < sum(labels) < len(labels):
            f.metrics["patient_auroc"] = float(roc_auc_score(labels, [r.patient_score for r in test]))
    return result


TABLE_METRICS: tuple[str, ...] = ("patient_accuracy", "patient_f1", "patient_specificity", "patient_auroc", "segment_f1",
                                  "segment_recall", "segment_specificity", "pixel_auroc", "pixel_auprc", "pixel_dice")
RECON_METRICS: tuple[str, ...] = ("ssim", "psnr", "mse", "eu")
_HEADERS = {**HEADERS, "patient_auroc": "patient AUROC"}


def summary(result: CVResult, metric: str) -> tuple[float, float, int]:
    values = [f.metrics[metric] for f in result.folds if metric in f.metrics]
    if not values:
        return (np.nan, np.nan, 0)
    return float(np.mean(values)), float(np.std(values)), len(values)


def table(results: dict[str, CVResult], metrics: Sequence[str] = TABLE_METRICS, spread: bool = True) -> str:
    """Markdown: one row per method, mean ± std over folds (population std) of each metric; rows
    with none of `metrics` are left out."""
    rows = {name: [summary(res, m) for m in metrics] for name, res in results.items()}
    rows = {k: v for k, v in rows.items() if any(n for _, _, n in v)}
    lines = ["| method | " + " | ".join(_HEADERS[m] for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, cells in rows.items():
        text = [format_mean_std(*c) if spread else ("–" if not c[2] else f"{c[0]:.3f}") for c in cells]
        lines.append(f"| {name} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def breakdown(studies: Sequence[BenchStudy], scores: dict[str, list[StudyRecord]]) -> str:
    """Patient AUROC (threshold-free, pooled over folds) of each group of positive studies against
    the normal studies of the same kind: where each method's detections come from."""
    from sklearn.metrics import roc_auc_score

    kind_of = {b.group: b.kind for b in studies if b.truth.label}
    groups = sorted(kind_of)
    n = {g: sum(b.truth.label and b.group == g for b in studies) for g in groups}
    lines = ["| method | " + " | ".join(f"{g} (n={n[g]})" for g in groups) + " | all |", "|---|" + "---|" * (len(groups) + 1)]
    for name, records in scores.items():
        cells = []
        for g in groups + ["all"]:
            chosen = [(b.truth.label, r.patient_score) for b, r in zip(studies, records)
                      if g == "all" or (b.group == g if b.truth.label else b.kind == kind_of[g])]
            labels = [c[0] for c in chosen]
            cells.append(f"{roc_auc_score(*zip(*chosen)):.2f}" if 0 < sum(labels) < len(labels) else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
