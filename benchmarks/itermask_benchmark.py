"""IterMask next to U2AD, Z-scoring and the DAE, and U2AD's Monte-Carlo inference with and
without IterMask's test-time refinement (docs/ITERMASK.md), on pseudo_benchmark.py's study set:
held-back real cords (errsm_23, errsm_24, sct_example_data) with and without pseudo-lesions at
three contrasts, plus generated phantoms; 5-fold protocol as there. Adds the CPU time each
method spends per scored slice (process time of the whole detect_study call, one torch thread).

    OMP_NUM_THREADS=1 python benchmarks/itermask_benchmark.py --out /tmp/itermask_bench [--paper-scoring]

Uses the shipped EdgeMAE and IterMask models (strategy 1: no adaptation); the DAE is trained as
in pseudo_benchmark.py (cached in OUT). OUT/table.md and OUT/results.json are rewritten per row.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO.parent / "U2ADCore"))

import pseudo_benchmark as pb  # noqa: E402

from u2adcore.config import EvaluationConfig, IterMaskConfig, U2ADConfig, paper_scoring  # noqa: E402
from u2adcore.evaluation.protocol import cross_validate, markdown_table  # noqa: E402
from u2adcore.io.atomic import write_text  # noqa: E402


def rows(args, profile, log) -> list[tuple[str, callable, U2ADConfig]]:
    from u2adcore.methods.dae import DAEMethod
    from u2adcore.methods.itermask import IterMaskMethod
    from u2adcore.methods.u2ad import U2ADMethod
    from u2adcore.methods.zscore import ZScoreMethod

    mc = pb.base_config(args.device, profile.mc_samples)
    refined = pb.base_config(args.device, profile.mc_samples)
    if args.paper_scoring:
        mc.scoring = refined.scoring = paper_scoring()
        mc.inference.mask_ratio = refined.inference.mask_ratio = None  # the paper's inference too
    refined.inference.refine_rounds = args.refine_rounds
    refined.inference.refine_mad_k = args.refine_mad_k
    return [
        ("Z-scoring", lambda: ZScoreMethod(config=mc), mc),
        ("IterMask (shipped)", lambda: IterMaskMethod(config=mc), mc),
        ("IterMask network, no refinement (whole cord masked, one pass)",
         lambda: IterMaskMethod(config=mc, itermask=IterMaskConfig(max_iters=0)), mc),
        ("U2AD, strategy 1 (MC)", lambda: U2ADMethod(config=mc), mc),
        (f"U2AD, strategy 1 (MC) + refinement ({args.refine_rounds} rounds, k={args.refine_mad_k:g})",
         lambda: U2ADMethod(config=refined), refined),
        ("DAE, strategy 1", lambda: DAEMethod(config=mc, checkpoint=pb.dae_model(args.realspine, profile, args.device,
                                                                                 args.out / "dae.pt", log)), mc),
    ]


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--realspine", type=Path, default=Path(os.environ.get("U2AD_REALSPINE", REPO.parent.parent / "shared" / "data" / "realspine")))
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phantoms", type=int, default=12)
    p.add_argument("--refine-rounds", type=int, default=3)
    p.add_argument("--refine-mad-k", type=float, default=2.0)
    p.add_argument("--paper-scoring", action="store_true", help="score with config.paper_scoring() instead of the default")
    p.add_argument("--only", nargs="+", default=None, help="run only rows whose name contains one of these")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - start:7.1f} s] {msg}", flush=True)

    profile = pb.PROFILES["cpu"]
    rng = np.random.default_rng(args.seed)
    studies = pb.real_studies(args.realspine, (-1, 0, 1), (0.25, 0.5, 1.0), rng) + pb.phantom_studies(args.phantoms, 5000)
    log(f"{len(studies)} studies ({sum(b.truth.label for b in studies)} with lesions)")
    results, timing, scores = {}, {}, {}
    for name, make, cfg in rows(args, profile, log):
        if args.only and not any(k.lower() in name.lower() for k in args.only):
            continue
        method = make()
        cpu0, wall0 = time.process_time(), time.monotonic()
        records = pb.score_all(studies, method, cfg)
        timing[name] = {"cpu_s_per_slice": (time.process_time() - cpu0) / len(studies),
                        "wall_s_per_slice": (time.monotonic() - wall0) / len(studies)}
        results[name] = cross_validate(records, EvaluationConfig(seed=args.seed))
        s = results[name].summary()
        log(f"{name}: segment F1 {s['segment_f1'][0]:.3f}, pixel AUPRC {s['pixel_auprc'][0]:.3f}, "
            f"{timing[name]['cpu_s_per_slice']:.2f} CPU s/slice")
        scores[name] = [{"id": r.id, "label": r.label, "patient_score": r.patient_score} for r in records]
        table = markdown_table(results) + "\n| method | CPU s / slice | wall s / slice |\n|---|---|---|\n" + "".join(
            f"| {n} | {t['cpu_s_per_slice']:.2f} | {t['wall_s_per_slice']:.2f} |\n" for n, t in timing.items())
        write_text(args.out / "table.md", table)
        write_text(args.out / "results.json", json.dumps({"settings": {**vars(args), "out": str(args.out), "realspine": str(args.realspine)},
                                                          "timing": timing, "scores": scores}, indent=1, default=str))
    print(table, flush=True)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
