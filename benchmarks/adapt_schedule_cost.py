"""What the short CPU adaptation schedule costs in detection quality.

Adapts the shipped model (EU+AU) on the pseudo-anomaly benchmark's 30 studies with the benchmark's
CPU profile (12 epochs) and with a 4x longer schedule (48 epochs: EU+AU from 36, EU refreshed every
6, learning rate halved every 16), then scores both with the paper's 5-fold protocol. Run
`benchmarks/pseudo_benchmark.py --out OUT` first: its 12-epoch model in OUT is reused.

    .venv/bin/python benchmarks/adapt_schedule_cost.py --out build/pseudo_benchmark
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pseudo_benchmark as pb  # noqa: E402

from u2adcore.config import EvaluationConfig  # noqa: E402
from u2adcore.evaluation.protocol import cross_validate  # noqa: E402
from u2adcore.methods.u2ad import U2ADMethod  # noqa: E402
from u2adcore.resources import default_model_path  # noqa: E402

LONG = pb.Profile(mc_samples=10, adapt_schedule="cpu",
                  adapt_overrides={"epochs": 48, "stage2_start": 36, "refresh_every": 6, "lr_step_epochs": 16},
                  dae_epochs=0, dae_lr_step=1, dae_slices=1)
SHOWN = ("patient_f1", "segment_f1", "segment_recall", "pixel_auroc", "pixel_auprc", "psnr", "mse")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the pseudo_benchmark.py output folder")
    p.add_argument("--realspine", type=Path, default=pb.REPO.parent / "shared" / "data" / "realspine")
    args = p.parse_args()
    studies = pb.real_studies(args.realspine, (-1, 0, 1), (0.25, 0.5, 1.0), np.random.default_rng(0)) + pb.phantom_studies(12, 5000)
    cfg = pb.base_config("cpu", 10)
    short = args.out / "adapted_euau.pt"
    if not short.exists():
        raise SystemExit(f"{short} not found: run benchmarks/pseudo_benchmark.py --out {args.out} first")
    long = args.out / "adapted_long_euau.pt"
    start = time.monotonic()
    pb.adapted_model(default_model_path(), pb.benchmark_slices(studies, cfg), "eu+au", LONG, "cpu", long, print)
    print(f"48-epoch adaptation ready after {time.monotonic() - start:.0f} s", flush=True)
    print("| schedule | " + " | ".join(SHOWN) + " |\n|---|" + "---|" * len(SHOWN))
    for name, ckpt in (("12 epochs (CPU profile)", short), ("48 epochs", long)):
        summary = cross_validate(pb.score_all(studies, U2ADMethod(config=cfg, checkpoint=ckpt), cfg), EvaluationConfig(seed=0)).summary()
        print(f"| {name} | " + " | ".join(f"{summary[k][0]:.3f} ± {summary[k][1]:.3f}" for k in SHOWN) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
