"""Detection pipeline: a Study and a Method in, maps, candidates, AnoCurve, scores and files out
(METHOD.md §6).

`detect_study` computes everything in memory; `write_detection` puts it on disk in one atomic
step, so a cancelled or failed run never leaves a half-written result folder for a reader (the
Slicer module, a batch script) to mistake for a finished one.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Union

import numpy as np
import SimpleITK as sitk

from . import __version__
from .config import Thresholds, U2ADConfig, to_dict
from .errors import InputError, OutputExistsError
from .io.atomic import staged_output_dir
from .methods.base import Method, MethodMaps
from .progress import CancelToken, ProgressCallback, ProgressEvent, emit
from .scoring.segments import ScoredSlice, SegmentScore, score_slice, segment_of_samples, thresholds_for, top_segment
from .volume.preprocess import PreparedSlice, maps_to_volume, prepare_slices

if TYPE_CHECKING:
    from .morphometry import Morphometry
    from .scoring.report_process import ReportProcess

MIN_ROI_PATCHES = 3  # fewer cannot be masked at r = 0.75 while leaving visible cord context

# Our file names. staged_output_dir moves them into place in sorted order, so result.json (last
# among them) appears last: its presence means the folder is complete.
NIFTI_OUTPUTS = ("anomaly_map", "error_map", "eu_map", "reconstruction", "candidates")
CURVE_CSV, RESULT_JSON, REPORT_PNG = "curve.csv", "result.json", "report.png"
OUTPUT_FILES = tuple(f"{n}.nii.gz" for n in NIFTI_OUTPUTS) + (CURVE_CSV, REPORT_PNG, RESULT_JSON)

_STAGES = ("preprocess", "inference", "scoring")


@dataclass
class DetectionResult:
    """One study's detection, ready to write; 2D pieces are from the scored (most-cord) slice."""

    study_id: str
    method: dict  # Method.describe()
    volumes: dict[str, sitk.Image]  # NIFTI_OUTPUTS names -> image on the input grid (eu/reconstruction may be absent)
    scored: ScoredSlice
    slice_index: int  # canonical left-right index of the scored slice
    slice_indices: list[int]
    thresholds: Optional[Thresholds]
    config: U2ADConfig  # the settings used (result.json holds config.to_dict of it)
    inputs: dict[str, Optional[str]]  # image, cord, levels paths as given
    levels_source: Optional[str]
    inferred_levels: tuple[str, ...]  # vertebral bodies filled from the prior, not marked
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    cord_source: str = "given"  # "given" (a mask was supplied) | "automatic" (segmented by u2adcore.segmentation)
    morphometry: Optional["CurveMorphometry"] = None  # AP diameter, CSA and MSCC (u2adcore.morphometry)
    verdict_note: str = ""  # why the model's thresholds give no verdict here ("" when they apply)

    @property
    def patient_score(self) -> float:
        return self.scored.patient_score

    @property
    def patient_positive(self) -> Optional[bool]:
        return self.scored.patient_positive

    @property
    def segments(self) -> list[SegmentScore]:
        return self.scored.segments

    def is_inferred(self, segment: SegmentScore) -> bool:
        """Whether a border of this known segment comes from the anatomical prior, not a mark."""
        return segment.known and any(body in self.inferred_levels for body in segment.name.split("-"))


def detection_config(cfg: U2ADConfig, method: Method) -> U2ADConfig:
    """`cfg` with its model section replaced by the network the method actually runs (when it has
    one), so result.json records the architecture that produced the maps, not a default."""
    model_config = getattr(method, "model_config", None)
    return cfg if model_config is None else dataclasses.replace(cfg, model=model_config)


def roi_patch_count(roi: np.ndarray, patch_size: int) -> int:
    """Patches of the grid holding at least one ROI pixel (the patches the model can mask)."""
    g = roi.shape[0] // patch_size
    return int(roi[: g * patch_size, : g * patch_size].reshape(g, patch_size, g, patch_size).any(axis=(1, 3)).sum())


def check_roi_patches(slices: list[PreparedSlice], patch_size: int, cord_path) -> None:
    """Refuse a cord mask too small to analyse: with fewer than MIN_ROI_PATCHES ROI patches the
    masked autoencoder has nothing to reconstruct from, and the scores would be noise."""
    for s in slices:
        n = roi_patch_count(s.roi, patch_size)
        if n < MIN_ROI_PATCHES:
            raise InputError(
                cord_path,
                f"the cord mask covers only {n} of the {patch_size}x{patch_size}-pixel patches in sagittal slice "
                f"{s.transform.slice_index} (at least {MIN_ROI_PATCHES} needed); check that the mask is the spinal cord "
                "of this image",
            )


def check_finite_maps(maps: list[MethodMaps], slices: list[PreparedSlice], method_name: str, image_path) -> None:
    """Refuse maps with NaN or infinite pixels: every later number (curve, scores, verdicts) would
    be NaN, and a NaN score compares as "negative" without anyone noticing."""
    for s, m in zip(slices, maps):
        for name in ("error", "eu", "recon"):
            arr = getattr(m, name, None)
            if arr is None:
                continue
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            if bad:
                raise InputError(
                    image_path,
                    f"method {method_name!r} produced {bad} NaN or infinite pixel(s) in its {name} map of sagittal slice "
                    f"{s.transform.slice_index}; this image cannot be analysed with it (nothing was written)",
                )


def scored_slice_position(slices: list[PreparedSlice]) -> int:
    """Position (in `slices`) of the slice with the most cord: the paper detects on the mid-sagittal slice."""
    return int(np.argmax([s.roi.sum() for s in slices]))


class _Stages:
    """Times each stage, reports it as progress and checks for cancellation between stages."""

    def __init__(self, progress: Optional[ProgressCallback], cancel: Optional[CancelToken], stages: tuple[str, ...]):
        self.progress, self.cancel, self.stages = progress, cancel, stages
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.cancel is not None:
            self.cancel.check()
        i = self.stages.index(name)
        emit(self.progress, ProgressEvent("stage", task="detect", stage=name, step=i, steps=len(self.stages), fraction=i / len(self.stages)))
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start


def detect_study(
    study,
    method: Method,
    cfg: U2ADConfig,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> DetectionResult:
    """Run `method` on `study`'s analysed slices (cfg.preprocess) and score them (cfg.scoring).

    Every analysed slice gets a post-processed map and candidates; the AnoCurve and the scores
    come from the slice with the most cord. Without levels every segment is unknown, but the
    map, candidates, curve and patient score are still produced.
    """
    stage = _Stages(progress, cancel, _STAGES)
    thresholds, verdict_note = thresholds_for(method.thresholds, cfg.scoring, cfg.inference)
    with stage("preprocess"):
        slices = prepare_slices(study, cfg.preprocess)
        check_roi_patches(slices, cfg.model.patch_size, study.cord_path)
    with stage("inference"):
        maps = method.maps(slices)
        if len(maps) != len(slices):
            raise RuntimeError(f"method {method.name!r} returned {len(maps)} maps for {len(slices)} slices")
        check_finite_maps(maps, slices, method.name, study.image_path)
    with stage("scoring"):
        scored = [
            score_slice(
                s.image,
                m.error,
                s.roi,
                _segment_rows(study, s),
                cfg.scoring,
                spacing_mm=cfg.preprocess.spacing_mm,
                thresholds=thresholds,
                residual=m.residual,
            )
            for s, m in zip(slices, maps)
        ]
        k = scored_slice_position(slices)
        if not np.isfinite(scored[k].patient_score):
            raise InputError(study.image_path, f"method {method.name!r} gave a non-finite patient score ({scored[k].patient_score}); nothing was written")
        volumes = _volumes(study.image, slices, maps, scored)
    if cancel is not None:
        cancel.check()
    levels = study.levels
    morphometry = curve_morphometry(study, slices[k], scored[k].curve)
    return DetectionResult(
        study_id=study.id,
        method=method.describe(),
        volumes=volumes,
        scored=scored[k],
        slice_index=slices[k].transform.slice_index,
        slice_indices=[s.transform.slice_index for s in slices],
        thresholds=thresholds,
        config=cfg,
        inputs={name: None if p is None else str(p) for name, p in (("image", study.image_path), ("cord", study.cord_path), ("levels", study.levels_path))},
        levels_source=None if levels is None else levels.source,
        inferred_levels=() if levels is None else tuple(levels.inferred),
        timings=stage.timings,
        cord_source=study.cord_source,
        morphometry=morphometry,
        verdict_note=verdict_note,
    )


@dataclass(frozen=True)
class CurveMorphometry:
    """The cord's morphometry, with its AP diameter and CSA sampled at the AnoCurve's positions."""

    morphometry: "Morphometry"
    ap_mm: np.ndarray  # one per AnoCurve sample (NaN where the 3D cord has no cross-section)
    csa_mm2: np.ndarray


def curve_morphometry(study, prepared: PreparedSlice, curve) -> Optional[CurveMorphometry]:
    """Morphometry of the study's 3D cord mask (None when the mask is too short to measure)."""
    from .morphometry import cord_morphometry

    try:
        morph = cord_morphometry(study.cord, study.levels)
    except ValueError:
        return None
    t = prepared.transform
    rows = (t.origin_rc[0] + np.asarray(curve.rows, float) * t.spacing_mm) / t.in_plane_spacing[0]
    return CurveMorphometry(morph, morph.profile.at_rows(rows, morph.profile.ap_mm), morph.profile.at_rows(rows, morph.profile.csa_mm2))


def _segment_rows(study, prepared: PreparedSlice) -> dict[str, Optional[tuple[float, float]]]:
    if study.levels is None:
        return {}
    from .levels.levels import segment_rows
    from .volume.orientation import geometry_only, to_canonical

    return segment_rows(study.levels, prepared, to_canonical(geometry_only(study.image)))


def _volumes(reference: sitk.Image, slices: list[PreparedSlice], maps: list[MethodMaps], scored: list[ScoredSlice]) -> dict[str, sitk.Image]:
    """Every 2D map back onto the input image's own grid (0 outside the analysed slices)."""
    out = {
        "anomaly_map": maps_to_volume([sc.amap for sc in scored], slices, reference),
        "error_map": maps_to_volume([m.error for m in maps], slices, reference),
    }
    if all(m.eu is not None for m in maps):
        out["eu_map"] = maps_to_volume([m.eu for m in maps], slices, reference)
    if all(m.recon is not None for m in maps):
        recon = [s.transform.to_original_units(m.recon) for s, m in zip(slices, maps)]
        out["reconstruction"] = maps_to_volume(recon, slices, reference)
    labels = maps_to_volume([sc.labels.astype(np.float32) for sc in scored], slices, reference, interpolation="nearest")
    out["candidates"] = sitk.Cast(labels, sitk.sitkUInt8)
    return out


# -- writing -------------------------------------------------------------------------------------


def check_output_folder(out_dir: Union[str, Path], allowed: Iterable[str], overwrite: bool) -> None:
    """Refuse, before any work is done, a folder holding names other than `allowed` (the same rule
    `write_detection` applies when it finally writes), so a user does not wait for a run that
    cannot be saved."""
    out_dir = Path(out_dir)
    if overwrite or not out_dir.is_dir():
        return
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in set(allowed))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
        raise OutputExistsError(f"{out_dir}: folder already holds files ({shown}); choose another folder or pass --overwrite")


def curve_csv(result: DetectionResult) -> str:
    """position_mm (along the cord from the top of the analysed cord), value, segment ('' outside),
    inferred (1 where a border of that segment comes from the prior, 0 where both were marked)."""
    curve = result.scored.curve
    names = segment_of_samples(curve, result.segments)
    inferred = {seg.name: int(result.is_inferred(seg)) for seg in result.segments}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    morph = result.morphometry
    writer.writerow(["position_mm", "anocurve", "segment", "inferred"] + (["ap_mm", "csa_mm2"] if morph is not None else []))
    for i, (pos, value, name) in enumerate(zip(curve.position_mm, curve.values, names)):
        extra = [] if morph is None else [_fmt(morph.ap_mm[i], ".3f"), _fmt(morph.csa_mm2[i], ".2f")]
        writer.writerow([f"{pos:.3f}", f"{value:.6g}", name, inferred.get(name, "")] + extra)
    return buf.getvalue()


def _fmt(v: float, spec: str) -> str:
    return "" if not np.isfinite(v) else format(float(v), spec)


def candidate_summary(result: DetectionResult) -> list[dict]:
    """Each candidate's rank, area (mm², on the analysis grid), peak and summed anomaly value."""
    sc = result.scored
    pixel_mm2 = result.config.preprocess.spacing_mm ** 2
    out = []
    for lab in range(1, int(sc.labels.max()) + 1):
        inside = sc.labels == lab
        values = sc.amap[inside]
        out.append({"rank": lab, "area_mm2": round(float(inside.sum() * pixel_mm2), 3),
                    "peak": float(values.max()), "sum": float(values.sum())})
    return out


def candidates_rule(result: DetectionResult) -> str:
    """How the candidates were chosen, in words (docs/DETECTION.md, "Candidates")."""
    sc = result.config.scoring
    if sc.candidates == "paper" or sc.residual == "paper":
        return f"paper: lowest {sc.bottom_fraction:g} of the cord zeroed, top {sc.top_components} components"
    th = result.thresholds
    if result.verdict_note:
        return "none: " + result.verdict_note
    if th is None or th.pixel is None:
        return "none: the model carries no calibrated pixel threshold"
    if result.patient_positive is False:
        return "none: the patient verdict is negative"
    return f"map > pixel threshold {th.pixel:.4g}, area >= {sc.min_candidate_mm2:g} mm², top {sc.top_components}"


def result_json(result: DetectionResult, files: dict[str, str]) -> dict:
    """The machine-readable summary (schema in docs/DETECTION.md)."""
    th = result.thresholds
    seg_verdict = th is not None and th.segment is not None
    segments = []
    for seg in result.segments:
        entry = seg.to_json(with_verdict=seg_verdict)
        entry["inferred"] = result.is_inferred(seg)
        if result.morphometry is not None:
            entry.update(result.morphometry.morphometry.by_name()[seg.name].to_json())
        segments.append(entry)
    top = top_segment(result.segments)
    out = {
        "study_id": result.study_id,
        "u2ad_version": __version__,
        "inputs": result.inputs,
        "levels_source": result.levels_source,
        "cord_source": result.cord_source,
        "patient_score": result.patient_score,
    }
    if th is not None and th.patient is not None:
        out["patient_positive"] = result.patient_positive
    if result.verdict_note:
        out["verdict_note"] = result.verdict_note
    out.update(
        {
            "top_segment": None if top is None else top.name,
            "segments": segments,
            "n_candidates": int(result.scored.labels.max()),
            "candidates": candidate_summary(result),
            "candidates_rule": candidates_rule(result),
            "method": result.method,
            "thresholds": None if th is None else to_dict(th),
            "seed": result.config.inference.seed,
            "slice_index": result.slice_index,
            "slice_indices": result.slice_indices,
            "settings": to_dict(result.config),
            "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
            "files": files,
        }
    )
    return out


def write_detection(
    result: DetectionResult,
    out_dir: Union[str, Path],
    overwrite: bool = False,
    *,
    cancel: Optional[CancelToken] = None,
    report_process: Optional["ReportProcess"] = None,
) -> dict[str, Path]:
    """Write every output of `result` into `out_dir` at once (see module docstring).

    A folder holding only our own output names is updated in place; one holding anything else is
    refused (OutputExistsError) unless `overwrite`. With a `report_process`, report.png is drawn
    there while the NIfTI files are written here. Records the write time in `result.timings`.
    Returns output name -> final path.
    """
    from .scoring.report import write_report

    out_dir = Path(out_dir)
    start = time.perf_counter()
    written: dict[str, str] = {}
    with staged_output_dir(out_dir, overwrite=overwrite, owned=OUTPUT_FILES) as stage:
        if report_process is not None:
            report_process.submit(stage / REPORT_PNG, result)
        try:
            for name in NIFTI_OUTPUTS:
                if name in result.volumes:
                    if cancel is not None:
                        cancel.check()
                    sitk.WriteImage(result.volumes[name], str(stage / f"{name}.nii.gz"), True)
                    written[name] = f"{name}.nii.gz"
            (stage / CURVE_CSV).write_text(curve_csv(result))
            written["curve"] = CURVE_CSV
        finally:
            if report_process is not None:
                report_process.wait()  # also on an error, so the child is idle for the next study
        if report_process is None:
            if cancel is not None:
                cancel.check()
            write_report(stage / REPORT_PNG, result)
        written["report"] = REPORT_PNG
        result.timings["write"] = time.perf_counter() - start
        written["result"] = RESULT_JSON
        (stage / RESULT_JSON).write_text(json.dumps(result_json(result, written), indent=2) + "\n")
    return {name: out_dir / fname for name, fname in written.items()}

