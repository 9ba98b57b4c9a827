"""Arguments shared by the subcommands that run Monte-Carlo inference, so that `--device`,
`--mc` and `--seed` mean the same in detect, calibrate, evaluate and demo."""
from __future__ import annotations

import argparse

from ..config import InferenceConfig


def add_inference_arguments(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=InferenceConfig.device, help="where the model runs")
    p.add_argument("--mc", type=positive_int, default=InferenceConfig.mc_samples, help="Monte-Carlo reconstructions per patch (K)")
    if seed:
        p.add_argument("--seed", type=int, default=InferenceConfig.seed,
                       help="seed of the Monte-Carlo masks (the same seed gives the same scores)")
    p.add_argument("--mask-ratio", type=_mask_ratio, default=None, metavar="R|model",
                   help=f"fraction of the cord patches hidden per Monte-Carlo pass (default {InferenceConfig.mask_ratio}; "
                        "'model': the model's training ratio, the paper's, also the default with --scoring paper); "
                        "thresholds hold only for the ratio they were calibrated with")


def _mask_ratio(text: str):
    if text == "model":
        return "model"
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1 or 'model', got {text}")
    return value


def _inference_mask_ratio(args: argparse.Namespace):
    """InferenceConfig.mask_ratio from `--mask-ratio` (None = the model's own ratio)."""
    if args.mask_ratio is None:
        return None if getattr(args, "scoring", "normative") == "paper" else InferenceConfig.mask_ratio
    return None if args.mask_ratio == "model" else args.mask_ratio


def apply_inference_arguments(cfg, args: argparse.Namespace, *, seed: bool = True) -> None:
    """Set cfg.inference from `add_inference_arguments`' options (in place); `seed` as given there."""
    cfg.inference.device, cfg.inference.mc_samples = args.device, args.mc
    cfg.inference.mask_ratio = _inference_mask_ratio(args)
    if seed:
        cfg.inference.seed = args.seed


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (a pixel count)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a count of passes or samples)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_scoring_arguments(p: argparse.ArgumentParser) -> None:
    """`--scoring paper` and `--candidates paper` reproduce METHOD.md §6 as published."""
    p.add_argument("--scoring", choices=("normative", "paper"), default="normative",
                   help="anomaly map: the hyperintense normative residual (default) or the paper's |x - mu| with its "
                        "post-processing, candidates and whole-cord patient score (docs/DETECTION.md)")
    p.add_argument("--candidates", choices=("threshold", "paper"), default="threshold",
                   help="candidates: components above the model's calibrated pixel threshold, none in a negative study "
                        "(default), or the paper's rule (lowest 20 %% zeroed, top 3 components kept regardless of size)")
    p.add_argument("--erode-px", type=non_negative_int, default=None, metavar="N",
                   help="pixels dropped from the cord's edge before scoring (default 2; 1 with --scoring paper); "
                        "thresholds hold only for the erosion they were calibrated with")
    p.add_argument("--residual-centre", choices=("slice", "profile"), default=None,
                   help="typical residual subtracted: the slice's median (slice, default) or a running median along "
                        "the cord per depth and side (profile; with --erode-px 0 the cord's surface is scored too, "
                        "docs/DETECTION.md); thresholds hold only for the centring they were calibrated with")


def apply_scoring_arguments(cfg, args: argparse.Namespace) -> None:
    """Set cfg.scoring from `add_scoring_arguments`' options (in place)."""
    from ..config import paper_scoring

    if args.scoring == "paper":
        cfg.scoring = paper_scoring()
    cfg.scoring.candidates = "paper" if args.scoring == "paper" else args.candidates
    if args.erode_px is not None:
        cfg.scoring.erode_px = args.erode_px
    if args.residual_centre is not None:
        cfg.scoring.residual_centre = args.residual_centre
