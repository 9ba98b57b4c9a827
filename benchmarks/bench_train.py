"""Training throughput (slices/s) and peak memory of EdgeMAE on this machine's CPU (or GPU).

Each (preset, context band) runs in a fresh process so that its peak resident memory (ru_maxrss,
which includes the ~0.4 GB of importing torch) is its own. Slices come from generated healthy
phantom studies (realistic cord size and position), prepared once by the parent process.

    .venv/bin/python benchmarks/bench_train.py --presets small paper --bands none 4 --steps 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _slices(n_studies: int, n_slices: int):
    from u2adcore.config import PreprocessConfig
    from u2adcore.data.phantom import write_phantom_set
    from u2adcore.training.pretrain import load_sources, manifest_source

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_phantom_set(Path(tmp) / "ph", n=n_studies, seed=11, lesion_fraction=0.0)
        return load_sources([manifest_source(manifest)], PreprocessConfig(n_slices=n_slices))


def worker(slices: Path, preset: str, band, steps: int, batch: int, device: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.model.masking import RandomMasking
    from u2adcore.model.patches import roi_patches
    from u2adcore.model.presets import model_config

    arrays = np.load(slices)
    torch.manual_seed(0)
    dev = torch.device(device)
    model = EdgeMAE(model_config(preset, context_band=band)).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    strategy, gen = RandomMasking(), torch.Generator().manual_seed(0)
    x_all, roi_all = torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["roi"])
    tokens = []

    def step(i: int) -> None:
        idx = torch.arange(i * batch, (i + 1) * batch) % len(x_all)
        x, roi = x_all[idx], roi_all[idx]
        rp = roi_patches(roi, model.cfg.patch_size)
        mask = strategy(idx, rp, gen)
        x, roi, rp, mask = x.to(dev), roi.to(dev), rp.to(dev), mask.to(dev)
        loss = model.loss(x, roi, model(x, rp, mask, roi=roi), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens.append(int(model.token_patches(rp).sum(1).float().mean()))

    step(0)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "preset": preset, "band": band, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "tokens_per_image": round(sum(tokens) / len(tokens)), "slices_per_s": round(steps * batch / seconds, 2),
        "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "threads": threads, "device": device,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["small", "paper"])
    ap.add_argument("--bands", nargs="+", default=["none", "4"], help="context bands to time ('none' = whole image)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (1 keeps a shared machine usable)")
    ap.add_argument("--worker", nargs=3, metavar=("SLICES", "PRESET", "BAND"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        band = None if args.worker[2] == "none" else int(args.worker[2])
        print(json.dumps(worker(Path(args.worker[0]), args.worker[1], band, args.steps, args.batch, args.device, args.threads)))
        return
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()[0]:.1f}  cpus {os.cpu_count()}  "
          f"batch {args.batch}  torch threads {args.threads}  device {args.device}")
    print("| preset | context band | params (M) | tokens/image | slices/s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        slices = Path(tmp) / "slices.npz"
        data = _slices(2, 8)
        np.savez(slices, images=data.images, roi=data.roi)
        for preset in args.presets:
            for band in args.bands:
                cmd = [sys.executable, __file__, "--worker", str(slices), preset, band, "--steps", str(args.steps),
                       "--batch", str(args.batch), "--device", args.device, "--threads", str(args.threads)]
                r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                print(f"| {r['preset']} | {band} | {r['params_M']} | {r['tokens_per_image']} | {r['slices_per_s']} | "
                      f"{r['peak_rss_MB']} |", flush=True)

if __name__ == "__main__":
    main()
