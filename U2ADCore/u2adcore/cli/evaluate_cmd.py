"""`u2ad evaluate`: the paper's 5-fold protocol on a labelled manifest (METHOD.md §7).

Thresholds are chosen on four folds and applied to the fifth; every metric is reported as
mean ± std over folds in metrics.json, metrics.csv and table.md (laid out like the paper's
Table 1). Studies are scored either here, by a method (`--model`/`--method`), or read from a
folder that `u2ad detect --manifest` wrote (`--predictions`).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path

from ..config import EvaluationConfig
from .options import add_inference_arguments, add_scoring_arguments, apply_inference_arguments, apply_scoring_arguments

OUTPUTS = {"metrics_json": "metrics.json", "metrics_csv": "metrics.csv", "table": "table.md"}


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Evaluate a detector on a labelled manifest (columns label, segments, optionally lesion) with "
        "stratified 5-fold cross-validation: patient accuracy/F1/specificity, segment F1/recall/specificity, pixel "
        "AUROC/AUPRC/Dice where lesion masks exist, and reconstruction SSIM/PSNR/MSE/EU for reconstructing methods.",
    )
    p.add_argument("--manifest", required=True, type=Path, help="labelled CSV (id,image,cord,levels,label,segments[,lesion])")
    p.add_argument("--model", type=Path, default=None, help="checkpoint of the method (default: the shipped U2AD model)")
    p.add_argument("--method", default=None, help="detector to evaluate (default u2ad)")
    p.add_argument("--predictions", type=Path, default=None, metavar="DIR",
                   help="instead of running a method, read DIR/<id>/result.json written by `u2ad detect --manifest`")
    p.add_argument("--out", required=True, type=Path, help="folder for metrics.json, metrics.csv, table.md")
    p.add_argument("--folds", type=int, default=EvaluationConfig.n_folds, help="number of folds (default %(default)s)")
    p.add_argument("--fold-seed", type=int, default=EvaluationConfig.seed, help="seed of the fold assignment")
    p.add_argument("--sensitivity", type=float, default=EvaluationConfig.patient_sensitivity,
                   help="patient-level sensitivity the thresholds are set to (default %(default)s)")
    add_inference_arguments(p)
    add_scoring_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds other files")
    return p


def _check_args(args: argparse.Namespace) -> None:
    from ..errors import InputError

    if args.predictions is not None and (args.model is not None or args.method is not None):
        raise InputError(args.predictions, "give either --predictions or --model/--method, not both")
    if args.predictions is not None and not args.predictions.is_dir():
        raise InputError(args.predictions, "predictions folder not found")
    if args.folds < 2:
        raise InputError(None, f"--folds must be at least 2, got {args.folds}")
    if not 0.0 < args.sensitivity <= 1.0:
        raise InputError(None, f"--sensitivity must be in (0, 1], got {args.sensitivity}")


def _finite_or_none(value):
    return value if isinstance(value, (int, str)) or value is None or math.isfinite(value) else None


def metrics_document(cv, records, folds_of: dict, source: dict, manifest: Path, cfg: EvaluationConfig) -> dict:
    """metrics.json: settings, per-fold thresholds and metrics, the summary and every study's scores."""
    from ..config import to_dict

    return {
        "source": source,
        "manifest": str(manifest),
        "evaluation": to_dict(cfg),
        "n_studies": len(records),
        "n_positive": sum(r.label for r in records),
        "summary": {m: {"mean": _finite_or_none(mean), "std": _finite_or_none(std), "n_folds": n}
                    for m, (mean, std, n) in cv.summary().items()},
        "folds": [
            {"fold": f.fold, "test_ids": list(f.test_ids), "thresholds": to_dict(f.thresholds),
             "pixel_threshold": f.pixel_threshold, "metrics": {k: _finite_or_none(v) for k, v in f.metrics.items()}}
            for f in cv.folds
        ],
        "studies": [
            {"id": r.id, "fold": folds_of[r.id], "label": r.label, "segments": sorted(r.segments),
             "patient_score": r.patient_score, "segment_scores": r.segment_scores}
            for r in records
        ],
    }


def metrics_csv(cv) -> str:
    """One row per fold, then the mean and std rows; empty cells where a metric is undefined."""
    summary = cv.summary()
    names = list(summary)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["fold", *names])

    def cell(v):
        return "" if v is None or not math.isfinite(v) else f"{v:.6g}"

    for f in cv.folds:
        writer.writerow([f.fold, *(cell(f.metrics.get(m)) for m in names)])
    writer.writerow(["mean", *(cell(summary[m][0]) for m in names)])
    writer.writerow(["std", *(cell(summary[m][1]) for m in names)])
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    from ..config import U2ADConfig
    from ..data.manifest import read_manifest
    from ..detect import detection_config
    from ..errors import InputError
    from ..evaluation.calibrate import manifest_truths, read_predictions, score_manifest
    from ..evaluation.protocol import cross_validate, markdown_table
    from ..io.atomic import staged_output_dir
    from ..methods.registry import get_method
    from .main import progress_callback

    _check_args(args)
    entries = read_manifest(args.manifest)
    truths = manifest_truths(entries, args.manifest, require_labels=True)
    eval_cfg = EvaluationConfig(patient_sensitivity=args.sensitivity, n_folds=args.folds, seed=args.fold_seed)
    if args.predictions is not None:
        records = read_predictions(entries, truths, args.predictions)
        source, name = {"predictions": str(args.predictions)}, args.predictions.name
    else:
        cfg = U2ADConfig()
        apply_inference_arguments(cfg, args)
        apply_scoring_arguments(cfg, args)
        method = get_method(args.method or "u2ad", config=cfg, checkpoint=args.model)
        cfg = detection_config(cfg, method)
        records = score_manifest(entries, truths, method, cfg, task="evaluate", progress=progress_callback(args))
        source, name = method.describe(), method.name
    try:
        cv = cross_validate(records, eval_cfg)
    except ValueError as exc:
        raise InputError(args.manifest, str(exc)) from exc
    folds_of = {i: f.fold for f in cv.folds for i in f.test_ids}
    table = markdown_table({name: cv})
    with staged_output_dir(args.out, overwrite=args.overwrite, owned=tuple(OUTPUTS.values())) as stage:
        doc = metrics_document(cv, records, folds_of, source, args.manifest, eval_cfg)
        (stage / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
        (stage / "metrics.csv").write_text(metrics_csv(cv))
        (stage / "table.md").write_text(table)
    outputs = {key: str(args.out / fname) for key, fname in OUTPUTS.items()}
    if args.progress == "jsonl":
        print(json.dumps({"event": "done", "outputs": outputs}), flush=True)
    else:
        print(table, end="", flush=True)
    return 0
