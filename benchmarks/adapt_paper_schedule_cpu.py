"""The paper's 200-epoch adaptation on CPU, measured once on a small set: time and effect.

Adapts the pretrained model (EU+AU) on a small target set with AdaptConfig's CPU schedule and
with the paper's schedule (200 epochs, EU+AU from 150, EU refreshed every 10 with K = 10), then
scores held-out studies of another subject with the pretrained, the CPU-adapted and the
paper-adapted model. Subject-disjoint: the adaptation set is errsm_23 and errsm_24 (slices
mid - 1 and mid + 1, each healthy and with pseudo-lesions: 8 slices, one batch per epoch); the
scored studies are sct_example_data's slices mid - 1, mid, mid + 1, healthy and with lesions.

Time per epoch is measured on that one-batch set and extrapolated to the benchmark's adaptation
sets (epoch time grows with the number of batches; refreshes with the number of slices).
`--max-minutes` stops the paper run early (its per-epoch time is then extrapolated to 200).

    python benchmarks/adapt_paper_schedule_cpu.py --out build/adapt_paper_cpu
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pseudo_benchmark as pb  # noqa: E402

from u2adcore.config import AdaptConfig  # noqa: E402
from u2adcore.errors import Cancelled  # noqa: E402
from u2adcore.methods.u2ad import U2ADMethod  # noqa: E402
from u2adcore.progress import CancelToken  # noqa: E402
from u2adcore.resources import default_model_path  # noqa: E402


def studies_of(realspine: Path, subjects: dict, offsets, seed: int):
    saved = dict(pb.SUBJECTS)
    try:
        pb.SUBJECTS.clear()
        pb.SUBJECTS.update(subjects)
        return pb.real_studies(realspine, tuple(offsets), (0.5, 1.0), np.random.default_rng(seed))
    finally:
        pb.SUBJECTS.clear()
        pb.SUBJECTS.update(saved)


def held_out_metrics(studies, checkpoint: Path, cfg) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    records = pb.score_all(studies, U2ADMethod(config=cfg, checkpoint=checkpoint), cfg)
    scores = np.concatenate([r.pixels.scores for r in records])
    lesion = np.concatenate([r.pixels.lesion for r in records])
    labels = [r.label for r in records]
    return {
        "pixel_auroc": float(roc_auc_score(lesion, scores)),
        "pixel_auprc": float(average_precision_score(lesion, scores)),
        "patient_auroc": float(roc_auc_score(labels, [r.patient_score for r in records])),
        "healthy_cord_mse": float(np.mean([r.recon["mse"] for r in records])),
        "healthy_cord_psnr": float(np.mean([r.recon["psnr"] for r in records])),
    }


def timed_adapt(start: Path, data, cfg: AdaptConfig, path: Path, max_s: float, log) -> dict:
    from u2adcore.training.checkpoint import load_checkpoint
    from u2adcore.uncertainty.adapt import adapt

    epochs: list[float] = []
    t_start = time.monotonic()
    token = CancelToken()

    def progress(ev):
        if ev.kind == "epoch":
            epochs.append(time.monotonic() - t_start)
            if len(epochs) % 10 == 0:
                log(f"{path.name}: epoch {len(epochs)}/{ev.epochs} at {epochs[-1]:.0f} s")
            if epochs[-1] > max_s:
                token.cancel()

    complete = True
    try:
        adapt(load_checkpoint(start, "cpu"), data, cfg, out_path=path, progress=progress, cancel=token)
    except Cancelled:
        complete = False
    total = time.monotonic() - t_start
    return {"epochs_run": len(epochs), "seconds": round(total, 1), "complete": complete,
            "s_per_epoch": round(total / max(len(epochs), 1), 2), "epoch_times": [round(t, 1) for t in epochs]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--realspine", type=Path, default=pb.REPO.parent / "shared" / "data" / "realspine")
    p.add_argument("--max-minutes", type=float, default=11.0, help="stop the paper run after this long and extrapolate")
    p.add_argument("--rescore", action="store_true",
                   help="reuse OUT's checkpoints and timings (measurement.json), only score again (e.g. after a scoring change)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - t0:6.0f} s] {msg}", flush=True)

    # the model both schedules start from, kept beside them so a rescore compares like with like
    pretrained = args.out / "pretrained.pt"
    if not args.rescore:
        shutil.copyfile(default_model_path(), pretrained)
    adapt_subjects = {k: pb.SUBJECTS[k] for k in ("errsm_23", "errsm_24")}
    train = studies_of(args.realspine, adapt_subjects, (-1, 1), 1)
    held = studies_of(args.realspine, {"sct_example": pb.SUBJECTS["sct_example"]}, (-1, 0, 1), 2)
    cfg = pb.base_config("cpu", 10)
    data = pb.benchmark_slices(train, cfg)
    log(f"adaptation set: {len(data)} slices; held out: {len(held)} studies of sct_example_data")
    if args.rescore:
        runs = json.loads((args.out / "measurement.json").read_text())["runs"]
    else:
        runs = {}
        cpu = AdaptConfig(strategy="eu+au", schedule="cpu", device="cpu")
        runs["cpu"] = timed_adapt(pretrained, data, cpu, args.out / "cpu.pt", 1e9, log)
        log(f"CPU schedule: {runs['cpu']}")
        paper = AdaptConfig(strategy="eu+au", schedule="paper", device="cpu")
        runs["paper"] = timed_adapt(pretrained, data, paper, args.out / "paper.pt", args.max_minutes * 60, log)
        runs["paper"]["extrapolated_200_s"] = round(runs["paper"]["s_per_epoch"] * 200, 0)
        log(f"paper schedule: {runs['paper']}")
    effect = {"pretrained": held_out_metrics(held, pretrained, cfg),
              "cpu": held_out_metrics(held, args.out / "cpu.pt", cfg)}
    # a stopped run's checkpoint holds its last epoch: its effect is that of the first N epochs
    effect[f"paper, first {runs['paper']['epochs_run']} epochs"] = held_out_metrics(held, args.out / "paper.pt", cfg)
    for k, v in effect.items():
        log(f"held-out {k}: " + ", ".join(f"{m} {x:.4f}" for m, x in v.items()))
    from u2adcore.training.checkpoint import file_sha256

    (args.out / "measurement.json").write_text(json.dumps({"runs": runs, "effect": effect, "n_adapt_slices": len(data),
                                                           "n_held_out": len(held), "scoring": dataclasses.asdict(cfg.scoring),
                                                           "model_sha256": file_sha256(pretrained)}, indent=1))
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
