"""`u2ad detect`: one study (IMAGE --cord MASK) or a manifest of studies -> detection folders.

In manifest mode the model is loaded once; each study gets its own sub-folder and one
`summary.csv` lists every study, so a batch of hundreds is one command. A study that fails (a
bad mask, a missing file) is reported and listed with its error instead of stopping the batch.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

from ..config import SEGMENTS, PreprocessConfig, U2ADConfig
from .options import add_inference_arguments, add_scoring_arguments, apply_inference_arguments, apply_scoring_arguments

SUMMARY_CSV = "summary.csv"


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Detect T2 hyperintensity in the spinal cord: anomaly map, candidates, AnoCurve, per-segment "
        "and patient scores, report.png and result.json. Give one IMAGE (with --cord, or its cord is segmented "
        "automatically with the shipped model), or --manifest.",
    )
    p.add_argument("image", nargs="?", help="3D T2w image: .nii/.nii.gz/.nrrd/.mha or a DICOM series folder")
    p.add_argument("--cord", help="spinal-cord mask of IMAGE (0/1, or give --cord-label); lesions must lie inside it. "
                   "Without it the cord is segmented automatically (u2ad segment-cord) and result.json says cord_source: automatic")
    p.add_argument("--cord-label", type=int, default=None, help="use voxels with this value of a multi-label mask as the cord")
    p.add_argument("--levels", default=None, help="vertebral levels: a label image or a Slicer .mrk.json point list")
    p.add_argument("--levels-kind", choices=("discs", "bodies"), default=None, help="what the values of a levels label image mean")
    p.add_argument("--manifest", default=None, help="CSV of studies (id,image,cord,levels[,levels_kind,...]) instead of IMAGE")
    p.add_argument("--model", default=None, help="checkpoint (.pt); default: the model shipped with the package")
    p.add_argument("--method", default="u2ad", help="detector (default u2ad); see docs/DETECTION.md for the others")
    p.add_argument("--out", default=None, help="output folder (default ./u2ad_<study id>; required with --manifest)")
    add_inference_arguments(p)
    add_scoring_arguments(p)
    p.add_argument("--n-slices", type=int, default=PreprocessConfig.n_slices, help="sagittal slices centred on the mid-sagittal one")
    p.add_argument("--slices", type=int, nargs="+", default=None, help="explicit canonical left-right slice indices (overrides --n-slices)")
    p.add_argument("--overwrite", action="store_true", help="write into an output folder that already holds other files")
    return p


def config_from_args(args: argparse.Namespace) -> U2ADConfig:
    cfg = U2ADConfig()
    apply_inference_arguments(cfg, args)
    apply_scoring_arguments(cfg, args)
    cfg.preprocess.n_slices = args.n_slices
    cfg.preprocess.slices = args.slices
    return cfg


def _check_args(args: argparse.Namespace) -> None:
    from ..errors import InputError

    if args.manifest and (args.image or args.cord):
        raise InputError(args.manifest, "give either --manifest or IMAGE [--cord], not both")
    if not args.manifest and not args.image:
        raise InputError(None, "give an IMAGE (and optionally its --cord mask), or --manifest")
    if args.manifest and not args.out:
        raise InputError(args.manifest, "--out is required with --manifest")


def run(args: argparse.Namespace) -> int:
    from ..data.manifest import read_manifest
    from ..detect import OUTPUT_FILES, check_output_folder
    from ..io.study import study_id_from_path
    from ..scoring.report_process import report_process_if_useful

    _check_args(args)
    if args.manifest:
        entries = read_manifest(args.manifest)
        out, allowed = Path(args.out), [e.id for e in entries] + [SUMMARY_CSV]
    else:
        entries = None
        out, allowed = Path(args.out or f"u2ad_{study_id_from_path(args.image)}"), list(OUTPUT_FILES)
    check_output_folder(out, allowed, args.overwrite)  # before any work: a refused folder costs nothing
    with report_process_if_useful() as reports:  # forked now, before torch is imported (scoring/report_process.py)
        return _run(args, entries, out, reports)


def _run(args: argparse.Namespace, entries, out: Path, reports) -> int:
    from ..detect import detection_config
    from ..methods.registry import get_method
    from .main import progress_callback

    cb = progress_callback(args)
    study, load = None, 0.0
    if entries is None:  # a bad input file is reported before the model is loaded
        from ..io.study import load_study

        start = time.perf_counter()
        if args.cord is None:
            _say(args, f"{args.image}: no --cord given; segmenting the spinal cord automatically")
        study = load_study(args.image, args.cord, levels=args.levels, levels_kind=args.levels_kind, cord_label=args.cord_label,
                           segmenter=None if args.cord is not None else _segmenter(args))
        load = time.perf_counter() - start
    start = time.perf_counter()
    cfg = config_from_args(args)
    method = get_method(args.method, config=cfg, checkpoint=args.model)
    cfg = detection_config(cfg, method)
    model_load = time.perf_counter() - start
    if entries is not None:
        return _run_manifest(args, entries, out, method, cfg, cb, model_load, reports)
    return _run_single(args, study, load, out, method, cfg, cb, model_load, reports)


def _run_single(args, study, load: float, out: Path, method, cfg: U2ADConfig, cb, model_load: float, reports) -> int:
    from ..detect import detect_study, write_detection

    result = detect_study(study, method, cfg, progress=cb)
    result.timings = {"model_load": model_load, "load": load, **result.timings}
    outputs = write_detection(result, out, overwrite=args.overwrite, report_process=reports)
    _finish(args, {k: str(v) for k, v in outputs.items()}, _one_line(result, out))
    return 0


def _say(args, text: str) -> None:
    """A note for the user: stdout, or a message event in the JSON-lines stream."""
    if args.progress == "jsonl":
        print(json.dumps({"event": "progress", "kind": "message", "task": "detect", "message": text}), flush=True)
    else:
        print(text, flush=True)


def _segmenter(args):
    from ..segmentation import load_segmenter

    return load_segmenter(device=args.device)


def _one_line(result, out: Path) -> str:
    from ..scoring.segments import top_segment

    verdict = "" if result.patient_positive is None else (" POSITIVE" if result.patient_positive else " negative")
    top = top_segment(result.segments)
    where = f", top segment {top.name} ({top.score:.4g})" if top is not None else ", no segment scored (levels unknown)"
    cord = " [cord segmented automatically]" if result.cord_source == "automatic" else ""
    note = f" [{result.verdict_note}]" if result.verdict_note else ""
    return f"{result.study_id}: patient score {result.patient_score:.4g}{verdict}{where}{cord}{note} -> {out}"


def _finish(args, outputs: dict, text: str) -> None:
    if args.progress == "jsonl":
        print(json.dumps({"event": "done", "outputs": outputs}), flush=True)
    else:
        print(text, flush=True)


def _run_manifest(args, entries, out: Path, method, cfg: U2ADConfig, cb, model_load: float, reports) -> int:
    from ..detect import detect_study, write_detection
    from ..errors import InputError, OutputExistsError
    from ..io.atomic import write_text
    from ..progress import ProgressEvent, emit

    rows, outputs, failed = [], {}, []
    segmenter = _segmenter(args) if any(e.cord is None for e in entries) else None
    for i, entry in enumerate(entries):
        emit(cb, ProgressEvent("step", task="detect", step=i, steps=len(entries), fraction=i / len(entries), message=entry.id))
        start = time.perf_counter()
        try:
            study = entry.load(segmenter)
            load = time.perf_counter() - start
            result = detect_study(study, method, cfg, progress=None)
            result.timings = {"load": load, **result.timings}
            write_detection(result, out / entry.id, overwrite=args.overwrite, report_process=reports)
        except (InputError, OutputExistsError, FileNotFoundError) as exc:  # this study's problem, not the batch's
            print(f"u2ad: {entry.id}: {exc}", file=sys.stderr, flush=True)
            rows.append(_summary_row(entry.id, None, str(exc)))
            failed.append(entry.id)
            continue
        rows.append(_summary_row(entry.id, result, ""))
        outputs[entry.id] = str(out / entry.id)
    write_text(out / SUMMARY_CSV, _summary_csv(rows))
    outputs["summary"] = str(out / SUMMARY_CSV)
    text = f"{len(entries) - len(failed)} of {len(entries)} studies detected (model loaded in {model_load:.1f} s) -> {out / SUMMARY_CSV}"
    _finish(args, outputs, text)
    return 1 if failed else 0


def _summary_row(study_id: str, result, error: str) -> dict:
    from ..scoring.segments import top_segment

    row = {"id": study_id, "patient_score": "", "verdict": "", "top_segment": "", **{s: "" for s in SEGMENTS}, "error": error}
    if result is None:
        return row
    row["patient_score"] = f"{result.patient_score:.6g}"
    row["verdict"] = "" if result.patient_positive is None else ("positive" if result.patient_positive else "negative")
    top = top_segment(result.segments)
    row["top_segment"] = "" if top is None else top.name
    for seg in result.segments:
        row[seg.name] = "unknown" if not seg.known else ("" if seg.score is None else f"{seg.score:.6g}")
    return row


def _summary_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", "patient_score", "verdict", "top_segment", *SEGMENTS, "error"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
