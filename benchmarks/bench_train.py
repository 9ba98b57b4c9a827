"""Training throughput (slices/s) and peak memory of EdgeMAE on this machine's CPU (or GPU).

Each (preset, context band) runs in a fresh process so that its peak resident memory is its own.
Slices come from generated healthy phantom studies (realistic cord size and position).

    .venv/bin/python benchmarks/bench_train.py --presets small paper --bands none 2 --steps 6
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


def _slices(n_studies: int, n_slices: int):
    from u2adcore.config import PreprocessConfig
    from u2adcore.data.phantom import write_phantom_set
    from u2adcore.training.pretrain import load_sources, manifest_source

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_phantom_set(Path(tmp) / "ph", n=n_studies, seed=11, lesion_fraction=0.0)
        return load_sources([manifest_source(manifest)], PreprocessConfig(n_slices=n_slices))


def worker(preset: str, band, steps: int, batch: int, device: str) -> dict:
    import torch

    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.model.masking import RandomMasking
    from u2adcore.model.patches import roi_patches
    from u2adcore.model.presets import model_config

    data = _slices(2, 8)
    torch.manual_seed(0)
    dev = torch.device(device)
    model = EdgeMAE(model_config(preset, context_band=band)).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    strategy, gen = RandomMasking(), torch.Generator().manual_seed(0)
    x_all, roi_all = torch.from_numpy(data.images), torch.from_numpy(data.roi)
    tokens = []

    def step(i: int) -> None:
        idx = torch.arange(i * batch, (i + 1) * batch) % len(data)
        x, roi = x_all[idx], roi_all[idx]
        rp = roi_patches(roi, model.cfg.patch_size)
        mask = strategy(idx, rp, gen)
        x, roi, rp, mask = x.to(dev), roi.to(dev), rp.to(dev), mask.to(dev)
        loss = model.loss(x, roi, model(x, rp, mask), mask)
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
        "threads": __import__("torch").get_num_threads(), "device": device,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["small", "paper"])
    ap.add_argument("--bands", nargs="+", default=["none", "2"], help="context bands to time ('none' = whole image)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", nargs=2, metavar=("PRESET", "BAND"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        band = None if args.worker[1] == "none" else int(args.worker[1])
        print(json.dumps(worker(args.worker[0], band, args.steps, args.batch, args.device)))
        return
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()[0]:.1f}  cpus {os.cpu_count()}  batch {args.batch}")
    print("| preset | context band | params (M) | tokens/image | slices/s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for preset in args.presets:
        for band in args.bands:
            cmd = [sys.executable, __file__, "--worker", preset, band, "--steps", str(args.steps), "--batch", str(args.batch),
                   "--device", args.device]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            print(f"| {r['preset']} | {band} | {r['params_M']} | {r['tokens_per_image']} | {r['slices_per_s']} | {r['peak_rss_MB']} |", flush=True)


if __name__ == "__main__":
    main()
