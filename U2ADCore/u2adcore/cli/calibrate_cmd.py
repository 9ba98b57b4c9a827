"""`u2ad calibrate`: score a manifest of studies with a U2AD model and store decision thresholds
in a copy of its checkpoint (METHOD.md §7), so that `u2ad detect` then reports verdicts.

The input checkpoint is never changed unless --out names it and --overwrite is given: a
calibration belongs to a population of studies, and silently replacing the thresholds a model
shipped with would change every later verdict without a trace.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import EvaluationConfig
from .options import add_inference_arguments, add_scoring_arguments, apply_inference_arguments, apply_scoring_arguments


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Choose the patient and segment decision thresholds on a manifest of studies and store them in a "
        "checkpoint. With labelled studies (manifest columns label, segments): the patient threshold at a fixed "
        "sensitivity and the segment threshold of maximum F1 (the paper's rules). With unlabelled or all-normal "
        "studies: both thresholds at a chosen false-positive rate.",
    )
    p.add_argument("--manifest", required=True, type=Path, help="CSV of studies (id,image,cord,levels[,label,segments])")
    p.add_argument("--model", type=Path, default=None, help="checkpoint to calibrate (default: the shipped model)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write: the model with the thresholds stored")
    p.add_argument("--sensitivity", type=float, default=EvaluationConfig.patient_sensitivity,
                   help="patient-level sensitivity to reach with labelled studies (default %(default)s)")
    p.add_argument("--fpr", type=float, default=EvaluationConfig.normal_fpr,
                   help="false-positive rate allowed with normal studies only (default %(default)s)")
    p.add_argument("--pixel-fpr", type=float, default=0.01,
                   help="with normal studies only: fraction of healthy cord pixels above the candidates' pixel "
                        "threshold (default %(default)s)")
    add_inference_arguments(p)
    add_scoring_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (also needed when --out is --model)")
    return p


def check_paths(model: Path, out: Path, overwrite: bool) -> None:
    from ..errors import InputError, OutputExistsError

    if out.exists() and not overwrite:
        if out.resolve() == model.resolve():
            raise InputError(out, "--out is the input checkpoint; pass --overwrite to store the thresholds in it")
        raise OutputExistsError(f"{out}: already exists; choose another --out or pass --overwrite")


def run(args: argparse.Namespace) -> int:
    from ..config import U2ADConfig
    from ..data.manifest import read_manifest
    from ..detect import detection_config
    from ..errors import InputError
    from ..evaluation.calibrate import choose_thresholds, manifest_truths, score_manifest
    from ..scoring.segments import scoring_signature
    from ..evaluation.healthy import calibrate_healthy, infer_studies
    from ..methods.registry import get_method
    from ..resources import default_model_path
    from ..training.checkpoint import update_thresholds
    from .main import progress_callback

    model = args.model if args.model is not None else default_model_path()
    check_paths(model, args.out, args.overwrite)
    if not 0.0 < args.sensitivity <= 1.0:
        raise InputError(None, f"--sensitivity must be in (0, 1], got {args.sensitivity}")
    if not 0.0 <= args.fpr < 1.0:
        raise InputError(None, f"--fpr must be in [0, 1), got {args.fpr}")
    if not 0.0 < args.pixel_fpr < 1.0:
        raise InputError(None, f"--pixel-fpr must be in (0, 1), got {args.pixel_fpr}")
    entries = read_manifest(args.manifest)
    truths = manifest_truths(entries, args.manifest, require_labels=False)
    cfg = U2ADConfig()
    apply_inference_arguments(cfg, args)
    apply_scoring_arguments(cfg, args)  # thresholds for the scoring detect will run with
    method = get_method("u2ad", config=cfg, checkpoint=model)
    cfg = detection_config(cfg, method)
    try:
        if any(t.label for t in truths):
            # Scored with the model's stored normative spread, which the new thresholds keep, so
            # that they stay in the units detect will score in.
            records = score_manifest(entries, truths, method, cfg, task="calibrate", progress=progress_callback(args))
            thresholds = choose_thresholds(records, EvaluationConfig(patient_sensitivity=args.sensitivity, normal_fpr=args.fpr))
            stored = method.thresholds
            if stored is not None:
                thresholds.residual_spread, thresholds.pixel = stored.residual_spread, stored.pixel
            thresholds.calibration["scoring"] = scoring_signature(cfg.scoring, cfg.inference)
        else:
            # Healthy studies only: the spread, then patient/segment thresholds and the pixel threshold.
            method.thresholds = None
            studies = infer_studies([(e.load(), None, e.id) for e in entries], method, cfg)
            thresholds = calibrate_healthy(studies, cfg, patient_fpr=args.fpr, segment_fpr=args.fpr, pixel_fpr=args.pixel_fpr)
    except ValueError as exc:
        raise InputError(args.manifest, str(exc)) from exc
    written = update_thresholds(model, thresholds, args.out)
    if args.progress == "jsonl":
        print(json.dumps({"event": "done", "outputs": {"model": str(written)}}), flush=True)
    else:
        segment = "none (no scored segment)" if thresholds.segment is None else f"{thresholds.segment:.6g}"
        print(f"patient threshold {thresholds.patient:.6g}, segment threshold {segment} "
              f"({thresholds.method}; {thresholds.target}) -> {written}", flush=True)
    return 0
