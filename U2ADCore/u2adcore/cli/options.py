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
