"""Studies -> scored records -> decision thresholds (METHOD.md §7).

Records are scored by `detect.detect_study` itself, so calibration and evaluation see exactly
the scores `u2ad detect` reports. With labelled studies (some positive) the paper's rules apply:
patient threshold at a fixed sensitivity, segment threshold at maximum segment-level F1. With
normal studies only, both thresholds are set at a false-positive rate, which is all that can be
promised without lesions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..config import EvaluationConfig, Thresholds, U2ADConfig
from ..errors import InputError
from ..progress import CancelToken, ProgressCallback, ProgressEvent, emit
from .metrics import reconstruction_metrics, top_segment
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


# -- scoring studies into records -----------------------------------------------------------------


@dataclass(frozen=True)
class Truth:
    """A study's labels: patient label and the segments its lesions lie in."""

    label: bool
    segments: frozenset[str] = frozenset()


class _KeepingMaps:
    """Runs a Method unchanged and keeps the slices and maps of its last call, so a record can
    measure pixels and reconstructions that `DetectionResult` does not carry."""

    def __init__(self, method):
        self.method, self.name, self.thresholds = method, method.name, method.thresholds
        self.slices, self.maps_out = [], []

    def maps(self, slices):
        self.slices, self.maps_out = slices, self.method.maps(slices)
        return self.maps_out

    def describe(self) -> dict:
        return self.method.describe()


def score_study(study, truth: Truth, method, cfg: U2ADConfig) -> StudyRecord:
    """Detect on `study` with `method` and keep what evaluation needs.

    Pixel scores are the post-processed anomaly map over the whole cord of the scored slice
    (where the study has a lesion mask). Reconstruction metrics are measured over the cord
    *outside* the lesion, where a faithful reconstruction is wanted (inside it, failing to
    reconstruct is the point).
    """
    from ..detect import detect_study

    keeper = _KeepingMaps(method)
    result = detect_study(study, keeper, cfg)
    k = next(i for i, s in enumerate(keeper.slices) if s.transform.slice_index == result.slice_index)
    prepared, maps = keeper.slices[k], keeper.maps_out[k]
    pixels = None
    if prepared.lesion is not None:
        pixels = PixelScores(scores=result.scored.amap[prepared.roi], lesion=prepared.lesion[prepared.roi])
    recon = None
    healthy = prepared.roi & ~prepared.lesion if prepared.lesion is not None else prepared.roi
    if maps.recon is not None and healthy.any():
        recon = reconstruction_metrics(prepared.image, maps.recon, healthy, eu=maps.eu)
    return StudyRecord(
        id=study.id,
        label=truth.label,
        segments=truth.segments,
        patient_score=result.patient_score,
        segment_scores={seg.name: seg.score for seg in result.segments},
        pixels=pixels,
        recon=recon,
    )


def manifest_truths(entries: Sequence, manifest, *, require_labels: bool) -> list[Truth]:
    """Labels of manifest entries. Either every row is labelled or none is (then all are taken as
    normal, unless `require_labels`); a mix is refused, naming the unlabelled rows."""
    unlabelled = [e.id for e in entries if e.label is None]
    if unlabelled and (require_labels or len(unlabelled) < len(entries)):
        shown = ", ".join(unlabelled[:5]) + (" …" if len(unlabelled) > 5 else "")
        raise InputError(manifest, f"{len(unlabelled)} studies have no 'label' (0/1): {shown}")
    return [Truth(label=bool(e.label), segments=frozenset(e.segments)) for e in entries]


def score_manifest(
    entries: Sequence,
    truths: Sequence[Truth],
    method,
    cfg: U2ADConfig,
    *,
    task: str,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> list[StudyRecord]:
    """`score_study` over manifest entries (loading each), with one progress step per study."""
    records = []
    for i, (entry, truth) in enumerate(zip(entries, truths)):
        if cancel is not None:
            cancel.check()
        emit(progress, ProgressEvent("step", task=task, step=i + 1, steps=len(entries), fraction=i / len(entries), message=entry.id))
        records.append(score_study(entry.load(), truth, method, cfg))
    return records


def read_predictions(entries: Sequence, truths: Sequence[Truth], folder) -> list[StudyRecord]:
    """Records from a folder written by `u2ad detect --manifest` (FOLDER/<id>/result.json).

    Pixel scores come from the anomaly map on the input grid, over the cord of the scored slice;
    reconstruction metrics are not available here (the files are in the scanner's units).
    """
    folder = Path(folder)
    records = []
    for entry, truth in zip(entries, truths):
        path = folder / entry.id / "result.json"
        if not path.is_file():
            raise InputError(path, f"no detection result for study {entry.id!r} (run `u2ad detect --manifest` into {folder})")
        try:
            result = json.loads(path.read_text())
            segment_scores = {s["name"]: s["score"] for s in result["segments"]}
            patient = float(result["patient_score"])
            slice_index = int(result["slice_index"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(path, f"not a readable detection result ({exc})") from exc
        pixels = None
        if entry.lesion is not None:
            pixels = _prediction_pixels(entry, path.parent / result["files"]["anomaly_map"], slice_index)
        records.append(StudyRecord(id=entry.id, label=truth.label, segments=truth.segments, patient_score=patient,
                                   segment_scores=segment_scores, pixels=pixels))
    return records


def _prediction_pixels(entry, amap_path: Path, slice_index: int) -> PixelScores:
    """In-cord anomaly values and lesion truth of one canonical sagittal slice, on the input grid."""
    import SimpleITK as sitk

    from ..io.images import read_image
    from ..volume.orientation import same_grid, to_canonical

    study = entry.load()
    amap = read_image(amap_path, what="anomaly map")
    if not same_grid(amap, study.image):
        raise InputError(amap_path, f"anomaly map is not on the grid of {entry.image}")
    values = sitk.GetArrayFromImage(to_canonical(amap))[slice_index]
    cord = sitk.GetArrayFromImage(to_canonical(study.cord))[slice_index] > 0
    lesion = sitk.GetArrayFromImage(to_canonical(study.lesion))[slice_index] > 0
    return PixelScores(scores=values[cord].astype(np.float32), lesion=lesion[cord])
