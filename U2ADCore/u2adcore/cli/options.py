"""Arguments shared by the subcommands that run Monte-Carlo inference, so that `--device`,
`--mc` and `--seed` mean the same in detect, calibrate, evaluate and demo."""
from __future__ import annotations

import argparse

from ..config import InferenceConfig


def add_inference_arguments(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=InferenceConfig.device, help="where the model runs")
    p.add_argument("--mc", type=int, default=InferenceConfig.mc_samples, help="Monte-Carlo reconstructions per patch (K)")
    if seed:
        p.add_argument("--seed", type=int, default=InferenceConfig.seed,
                       help="seed of the Monte-Carlo masks (the same seed gives the same scores)")


def add_scoring_arguments(p: argparse.ArgumentParser) -> None:
    """`--scoring paper` and `--candidates paper` reproduce METHOD.md §6 as published."""
    p.add_argument("--scoring", choices=("normative", "paper"), default="normative",
                   help="anomaly map: the hyperintense normative residual (default) or the paper's |x - mu| with its "
                        "post-processing, candidates and whole-cord patient score (docs/DETECTION.md)")
    p.add_argument("--candidates", choices=("threshold", "paper"), default="threshold",
                   help="candidates: components above the model's calibrated pixel threshold, none in a negative study "
                        "(default), or the paper's rule (lowest 20 %% zeroed, top 3 components kept regardless of size)")


def apply_scoring_arguments(cfg, args: argparse.Namespace) -> None:
    """Set cfg.scoring from `add_scoring_arguments`' options (in place)."""
    from ..config import paper_scoring

    if args.scoring == "paper":
        cfg.scoring = paper_scoring()
    cfg.scoring.candidates = "paper" if args.scoring == "paper" else args.candidates
