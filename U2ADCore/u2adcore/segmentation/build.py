"""Build a cord segmentation model from the real manual masks and phantoms (one command:
scripts/build_cordseg_model.sh; the leave-one-subject-out folds: benchmarks/cordseg_loso.py).

    python -m u2adcore.segmentation.build --realspine ROOT --out cordseg.pt [--hold-out errsm_24] [--steps N]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..config import CordSegConfig, PhantomConfig
from .grid import mask_to_working, to_working
from .network import save_cordseg
from .subjects import realspine_subjects
from .train import TrainVolume, train_cordseg

PHANTOM_WEIGHT = 0.5  # each phantom is drawn half as often as a real subject


def working_volume(name: str, image, mask, cfg: CordSegConfig, weight: float = 1.0) -> TrainVolume:
    work = to_working(image, cfg.spacing_mm, cfg.clip_percentiles)
    return TrainVolume(name, work.array, mask_to_working(mask, work.grid), weight)


def training_volumes(realspine: Path, hold_out: Sequence[str], n_phantoms: int, cfg: CordSegConfig, phantom_seed: int = 2027) -> list[TrainVolume]:
    from ..data.phantom import make_phantom

    subjects = realspine_subjects(realspine)
    unknown = sorted(set(hold_out) - {s.name for s in subjects})
    if unknown:
        raise SystemExit(f"unknown subject(s) to hold out: {unknown}; known: {[s.name for s in subjects]}")
    vols = [working_volume(s.name, *s.read(), cfg) for s in subjects if s.name not in hold_out]
    seeds = np.random.SeedSequence(phantom_seed).spawn(n_phantoms)
    for k, seed in enumerate(seeds):
        # Alternate the phantoms' slice thickness and pixel size, so resolution varies within the set.
        pcfg = PhantomConfig(n_slices=17, slice_mm=(1.0, 2.0)[k % 2], pixel_mm=(0.9, 0.6, 1.2)[k % 3], orientation=("PSR", "LPS", "RAS")[k % 3])
        ph = make_phantom(int(seed.generate_state(1)[0]), cfg=pcfg)
        vols.append(working_volume(f"phantom_{k}", ph.image, ph.cord, cfg, PHANTOM_WEIGHT))
    return vols


def _sha256(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--realspine", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--hold-out", nargs="*", default=[], help="subjects left out of training")
    p.add_argument("--steps", type=int, default=CordSegConfig.steps)
    p.add_argument("--phantoms", type=int, default=6)
    p.add_argument("--seed", type=int, default=CordSegConfig.seed)
    p.add_argument("--lr", type=float, default=CordSegConfig.lr)
    args = p.parse_args(argv)

    import torch

    from ..progress import TerminalProgress

    cfg = dataclasses.replace(CordSegConfig(), steps=args.steps, seed=args.seed, lr=args.lr)
    t0 = time.perf_counter()
    vols = training_volumes(args.realspine, args.hold_out, args.phantoms, cfg)
    print(f"{len(vols)} training volumes ({', '.join(v.name for v in vols)}) prepared in {time.perf_counter() - t0:.0f} s", flush=True)
    net, losses = train_cordseg(vols, cfg, progress=TerminalProgress(sys.stderr, min_interval_s=30))
    real = [s for s in realspine_subjects(args.realspine) if s.name not in args.hold_out]
    training = {
        "subjects": [v.name for v in vols],
        "held_out": list(args.hold_out),
        "phantoms": args.phantoms,
        "steps": cfg.steps,
        "final_loss": float(np.mean(losses[-50:])),
        "seconds": round(time.perf_counter() - t0, 1),
        "torch_threads": torch.get_num_threads(),
        "data_sha256": _sha256([f for s in real for f in (s.image, s.cord)]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part")
    save_cordseg(tmp, net, cfg, training)
    tmp.replace(args.out)
    args.out.with_suffix(".losses.json").write_text(json.dumps(losses))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) after {training['seconds']} s; {json.dumps(training)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
