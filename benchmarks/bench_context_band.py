"""Does a context band around the cord reconstruct as well as the whole image, and how much faster is it?

Two models of the same size are trained the same way (same seed, data, batches, masks and
augmentation) on healthy studies: generated phantoms plus the real errsm_11/18/21. They differ
only in `context_band` (None = all 1024 patches are tokens). Both are then scored on held-back
real healthy slices (errsm_23, errsm_24, sct_example_data): each slice is reconstructed under
`--masks` seeded random masks (the same for both models) and SSIM/PSNR/MSE are taken over the
ROI pixels of the masked patches (evaluation.metrics.reconstruction_metrics).

`--evaluate MODEL.pt` scores an existing checkpoint (e.g. the shipped model) on the same slices,
with single masks and with Monte-Carlo inference (K = 10, the detection path).

    .venv/bin/python benchmarks/bench_context_band.py --bands none 2 3 4 --epochs 30
    .venv/bin/python benchmarks/bench_context_band.py --evaluate U2ADCore/u2adcore/resources/models/default.pt
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TRAIN_REAL = ("errsm_11", "errsm_18", "errsm_21")
HELD_BACK = ("errsm_23", "errsm_24", "sct_example_data")


def real_entries(root: Path, ids) -> list:
    from u2adcore.data.manifest import ManifestEntry

    paths = {f"errsm_{n}": (root / "sct_2014_errsm" / f"errsm_{n}" / "t2.nii.gz", root / "sct_2014_errsm" / f"errsm_{n}" / "t2_manual_segmentation.nii.gz")
             for n in (11, 18, 21, 23, 24)}
    paths["sct_example_data"] = (root / "sct_example_data" / "t2" / "t2.nii.gz", root / "sct_example_data" / "t2" / "t2_seg.nii.gz")
    return [ManifestEntry(i, *paths[i]) for i in ids]


def held_back_slices(root: Path, n_slices: int):
    from u2adcore.config import PreprocessConfig
    from u2adcore.training.slices_data import load_entries

    return load_entries(real_entries(root, HELD_BACK), PreprocessConfig(n_slices=n_slices))


def training_slices(root: Path, n_phantoms: int, n_slices: int):
    from u2adcore.config import PreprocessConfig
    from u2adcore.data.phantom import write_phantom_set
    from u2adcore.training.slices_data import concat, load_entries
    from u2adcore.training.pretrain import load_sources, manifest_source

    pre = PreprocessConfig(n_slices=n_slices)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_phantom_set(Path(tmp) / "ph", n=n_phantoms, seed=0, lesion_fraction=0.0)
        phantoms = load_sources([manifest_source(manifest)], pre)
    return concat([phantoms, load_entries(real_entries(root, TRAIN_REAL), pre)])


def masked_recon_metrics(model, data, n_masks: int, seed: int = 1234) -> dict:
    """Mean SSIM/PSNR/MSE over the ROI pixels of masked patches, n_masks seeded masks per slice."""
    from u2adcore.evaluation.metrics import reconstruction_metrics
    from u2adcore.model.masking import random_mask
    from u2adcore.model.patches import patch_to_pixels, roi_patches

    gen = torch.Generator().manual_seed(seed)
    x, roi = torch.from_numpy(data.images), torch.from_numpy(data.roi)
    rp = roi_patches(roi, model.cfg.patch_size)
    rows = []
    model.eval()
    with torch.no_grad():
        for _ in range(n_masks):
            mask = random_mask(rp, model.cfg.mask_ratio, gen)
            hidden = (patch_to_pixels(mask, model.cfg.patch_size) & roi)[:, 0].numpy()
            recon = model(x, rp, mask, roi=roi).image[:, 0].numpy()
            pasted = np.where(hidden, recon, data.images[:, 0])
            rows += [reconstruction_metrics(data.images[i, 0], pasted[i], hidden[i]) for i in range(len(data)) if hidden[i].any()]
    return {k: float(np.mean([r[k] for r in rows])) for k in ("ssim", "psnr", "mse")}


def mc_recon_metrics(model, data, k: int = 10) -> dict:
    """The detection path: Monte-Carlo mean reconstruction, metrics over the whole cord."""
    from u2adcore.evaluation.metrics import reconstruction_metrics
    from u2adcore.uncertainty.montecarlo import mc_inference

    mc = mc_inference(model, data.images, data.roi, K=k, seed=0)
    rows = [reconstruction_metrics(data.images[i, 0], mc.mu[i], data.roi[i, 0], mc.eu[i]) for i in range(len(data))]
    return {key: float(np.mean([r[key] for r in rows])) for key in ("ssim", "psnr", "mse", "eu")}


def inference_rate(model, data, batch: int = 32) -> float:
    """Forward passes per second at inference (one masked reconstruction of one slice each)."""
    from u2adcore.model.masking import random_mask
    from u2adcore.model.patches import roi_patches

    idx = torch.arange(batch) % len(data)
    x, roi = torch.from_numpy(data.images)[idx], torch.from_numpy(data.roi)[idx]
    rp = roi_patches(roi, model.cfg.patch_size)
    mask = random_mask(rp, model.cfg.mask_ratio, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(x, rp, mask, roi=roi)
        start = time.perf_counter()
        model(x, rp, mask, roi=roi)
    return batch / (time.perf_counter() - start)


def compare(args) -> None:
    from u2adcore.config import ModelConfig, TrainConfig
    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.model.masking import RandomMasking
    from u2adcore.model.patches import roi_patches
    from u2adcore.training.loop import train

    train_data = training_slices(args.realspine, args.phantoms, args.n_slices)
    test_data = held_back_slices(args.realspine, args.eval_slices)
    size = dict(embed_dim=args.dims[0], depth=args.dims[1], num_heads=args.dims[2], decoder_embed_dim=args.dims[3],
                decoder_depth=args.dims[4], decoder_num_heads=args.dims[5])
    cfg = TrainConfig(epochs=args.epochs, lr_step_epochs=max(1, round(args.epochs * 0.4)), batch_size=8, device="cpu",
                      seed=args.seed)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()[0]:.1f}  torch threads {torch.get_num_threads()}")
    print(f"# train: {len(train_data)} slices of {len(train_data.studies())} studies; held back: {len(test_data)} slices "
          f"of {', '.join(test_data.studies())}; model {size}; {args.epochs} epochs x {len(train_data) // 8} steps; seed {args.seed}")
    print("| tokens | tokens/image | train slices/s | inference passes/s | final train loss | masked SSIM | masked PSNR (dB) | masked MSE |")
    print("|---|---|---|---|---|---|---|---|")
    for band in args.bands:
        torch.manual_seed(args.seed)
        model = EdgeMAE(ModelConfig(preset="custom", context_band=band, **size))
        start = time.perf_counter()
        history = train(model, train_data, cfg, strategy=RandomMasking())
        rate = sum(r["epoch"] > 0 for r in history.epochs) * (len(train_data) // 8) * 8 / (time.perf_counter() - start)
        m = masked_recon_metrics(model, test_data, args.masks)
        tokens = model.token_patches(roi_patches(torch.from_numpy(test_data.roi), 8)).sum(1).float().mean().item()
        label = "whole image" if band is None else f"band {band}"
        print(f"| {label} | {tokens:.0f} | {rate:.2f} | {inference_rate(model, test_data):.1f} | {history.losses[-1]:.5f} | "
              f"{m['ssim']:.4f} | {m['psnr']:.2f} | {m['mse']:.5f} |", flush=True)


def evaluate(args) -> None:
    from u2adcore.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(args.evaluate)
    test_data = held_back_slices(args.realspine, args.eval_slices)
    overlap = sorted(set(loaded.training_data.get("studies", [])) & set(test_data.studies()))
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()[0]:.1f}  {args.evaluate} "
          f"(preset {loaded.config.model.preset}, band {loaded.config.model.context_band}); held back: {len(test_data)} "
          f"slices of {', '.join(test_data.studies())}; overlap with training: {overlap or 'none'}")
    m = masked_recon_metrics(loaded.model, test_data, args.masks)
    mc = mc_recon_metrics(loaded.model, test_data)
    print("| evaluation | SSIM | PSNR (dB) | MSE | mean EU |")
    print("|---|---|---|---|---|")
    print(f"| one mask (r = 0.75), masked ROI pixels, {args.masks} masks/slice | {m['ssim']:.4f} | {m['psnr']:.2f} | {m['mse']:.5f} | |")
    print(f"| Monte-Carlo μ (K = 10), whole cord | {mc['ssim']:.4f} | {mc['psnr']:.2f} | {mc['mse']:.5f} | {mc['eu']:.2e} |")


def _band(value: str):
    return None if value == "none" else int(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--realspine", type=Path, default=Path(os.environ.get("U2AD_REALSPINE", REPO.parent / "shared" / "data" / "realspine")))
    ap.add_argument("--bands", nargs="+", type=_band, default=[None, 2], help="context bands to compare ('none' = whole image)")
    ap.add_argument("--seed", type=int, default=0, help="model initialisation and training seed")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--phantoms", type=int, default=6)
    ap.add_argument("--n-slices", type=int, default=30, help="slices per training study (those with cord are kept)")
    ap.add_argument("--eval-slices", type=int, default=5, help="middle slices per held-back study")
    ap.add_argument("--masks", type=int, default=4, help="random masks per held-back slice")
    ap.add_argument("--dims", type=int, nargs=6, default=[64, 4, 4, 32, 2, 4],
                    metavar=("EMBED", "DEPTH", "HEADS", "DEC_EMBED", "DEC_DEPTH", "DEC_HEADS"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps a shared machine usable)")
    ap.add_argument("--evaluate", type=Path, help="score this checkpoint on the held-back slices instead")
    args = ap.parse_args()
    if not (args.realspine / "SOURCES.md").exists():
        sys.exit(f"real spine data not found at {args.realspine} (set U2AD_REALSPINE)")
    torch.set_num_threads(args.threads)
    evaluate(args) if args.evaluate else compare(args)


if __name__ == "__main__":
    main()
