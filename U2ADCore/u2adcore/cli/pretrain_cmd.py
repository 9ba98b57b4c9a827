"""`u2ad pretrain`: train EdgeMAE on healthy studies and write one checkpoint.

Runs alone or under `torchrun --nproc-per-node N u2ad pretrain ...` (DistributedDataParallel;
only rank 0 writes and reports).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..config import ModelConfig, PreprocessConfig, TrainConfig
from .options import non_negative_int


def _band(value: str):
    return None if value.lower() in ("none", "full") else int(value)


def _nonnegative(value: str) -> float:
    x = float(value)
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return x


def _positive(value: str) -> float:
    x = float(value)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return x


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Pretrain the EdgeMAE masked autoencoder on healthy T2w studies (random masking of cord "
        "patches, METHOD.md §3), or with --method itermask IterMask's network. Studies come from manifests and/or Spine Generic folders; the checkpoint "
        "records the settings, the studies used and the loss curve (MODEL_loss.csv/.png beside it).",
    )
    p.add_argument("--manifest", action="append", default=[], type=Path, help="CSV manifest of healthy studies (repeatable)")
    p.add_argument("--spine-generic", action="append", default=[], type=Path, metavar="ROOT",
                   help="a Spine Generic (BIDS) dataset folder (repeatable)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (MODEL.pt)")
    p.add_argument("--method", default="u2ad", choices=("u2ad", "itermask"),
                   help="u2ad: the EdgeMAE (default); itermask: IterMask's inpainting U-Net (docs/ITERMASK.md)")
    p.add_argument("--preset", default=ModelConfig.preset, help="model size: tiny, small (default) or paper")
    p.add_argument("--context-band", type=_band, default=ModelConfig.context_band, metavar="N|none",
                   help="patches around the cord the model sees (none = the whole image; default %(default)s)")
    p.add_argument("--intensity-norm", choices=("none", "visible_cord", "visible_profile"), default="none",
                   help="visible_cord: the network sees each slice scaled so its visible cord's median is the same "
                   "in every study; visible_profile: the same per row, from the running median along the eroded "
                   "visible cord (docs/MODEL.md); none: the paper's [0, 1] input (default)")
    p.add_argument("--anchor-visible", action="store_true",
                   help="with --intensity-norm: at inference, rescale each reconstruction to the visible cord's level")
    p.add_argument("--loss-erode", type=non_negative_int, default=ModelConfig.loss_erode, metavar="PX",
                   help="reconstruction loss over the cord eroded by PX pixels (default %(default)s: the whole cord, the paper's)")
    p.add_argument("--patch-size", type=int, default=ModelConfig.patch_size, metavar="PX",
                   help="side of the square patches the image is cut into (default %(default)s; must divide the image size)")
    p.add_argument("--mask-ratio", type=float, default=ModelConfig.mask_ratio,
                   help="fraction of cord patches hidden per image (default %(default)s)")
    p.add_argument("--schedule", default="paper", help="paper (200 epochs, lr x0.1 every 50) or cpu (25 epochs, x0.1 every 10)")
    p.add_argument("--epochs", type=int, help="override the schedule's number of epochs")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="global batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=TrainConfig.lr, help="initial learning rate (default %(default)s)")
    p.add_argument("--n-slices", type=int, default=TrainConfig.n_slices, help="sagittal slices per study (default %(default)s)")
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--device", default=TrainConfig.device, help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--no-amp", action="store_true", help="no bf16 mixed precision on CUDA")
    p.add_argument("--no-augment", action="store_true", help="train without intensity augmentation")
    p.add_argument("--noise-var", type=float, default=None,
                   help="variance of the augmentation noise (default: 0.02 for u2ad as in the paper, 0.001 for itermask)")
    p.add_argument("--gamma", type=_positive, nargs=2, default=TrainConfig.gamma, metavar=("LO", "HI"),
                   help="augmentation: image gamma drawn from [LO, HI] (tissue contrast of other scanners; default off)")
    p.add_argument("--bias-field", type=_nonnegative, default=TrainConfig.bias_field, metavar="A",
                   help="augmentation: smooth bias field exp(a·u + b·v), |a|, |b| <= A over the image (default off)")
    p.add_argument("--blur-sigma", type=_nonnegative, default=TrainConfig.blur_sigma, metavar="PX",
                   help="augmentation: Gaussian blur of up to PX pixels (coarser acquisitions; default off)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--ship", action="store_true", help="finish with float16 weights and no optimizer state (a shippable model)")
    return p


def config_from_args(args: argparse.Namespace):
    """The U2ADConfig the arguments describe."""
    from ..config import U2ADConfig
    from ..errors import InputError
    from ..model.presets import model_config
    from ..training.pretrain import apply_schedule

    try:
        model = model_config(args.preset, context_band=args.context_band, mask_ratio=args.mask_ratio,
                             intensity_norm=None if args.intensity_norm == "none" else args.intensity_norm,
                             anchor_visible=args.anchor_visible, loss_erode=args.loss_erode,
                             patch_size=args.patch_size)
    except ValueError as exc:
        raise InputError("--preset", str(exc)) from exc
    if args.gamma[0] > args.gamma[1]:
        raise InputError("--gamma", f"the range must be LO HI with LO <= HI, got {args.gamma[0]} {args.gamma[1]}")
    train = apply_schedule(TrainConfig(), args.schedule)
    train = dataclasses.replace(
        train, batch_size=args.batch_size, lr=args.lr, n_slices=args.n_slices, seed=args.seed, device=args.device,
        amp=not args.no_amp, augment=not args.no_augment, epochs=args.epochs or train.epochs,
        gamma=tuple(args.gamma), bias_field=args.bias_field, blur_sigma=args.blur_sigma,
    )
    if args.noise_var is not None or args.method == "itermask":
        from ..training.itermask import NOISE_VAR

        train = dataclasses.replace(train, noise_var=args.noise_var if args.noise_var is not None else NOISE_VAR)
    return U2ADConfig(preprocess=PreprocessConfig(n_slices=train.n_slices), model=model, train=train)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError, OutputExistsError
    from ..training.distributed import init_from_env, shutdown
    from ..training.loop import loss_curve_paths
    from ..training.pretrain import load_sources, manifest_source, pretrain, spine_generic_source
    from .main import progress_callback

    if not args.manifest and not args.spine_generic:
        raise InputError(None, "give at least one --manifest or --spine-generic folder of healthy studies")
    if args.out.exists() and not (args.resume or args.overwrite):
        raise OutputExistsError(f"{args.out}: already exists; pass --resume to continue it or --overwrite to replace it")
    cfg = config_from_args(args)
    ctx = init_from_env(cfg.train.device)
    try:
        progress = progress_callback(args) if ctx.is_main else None
        sources = [manifest_source(m) for m in args.manifest] + [spine_generic_source(r) for r in args.spine_generic]
        data = load_sources(sources, cfg.preprocess, progress=progress)
        if args.method == "itermask":
            from ..config import IterMaskConfig
            from ..training.itermask import pretrain_itermask

            pretrain_itermask(data, sources, cfg, IterMaskConfig(), args.out, progress=progress, resume=args.resume,
                              ctx=ctx, ship=args.ship)
        else:
            pretrain(data, sources, cfg, args.out, progress=progress, resume=args.resume, ctx=ctx, ship=args.ship)
    finally:
        shutdown(ctx)
    if ctx.is_main:
        csv_path, png_path = loss_curve_paths(args.out)
        outputs = {"model": str(args.out), "loss_csv": str(csv_path), "loss_png": str(png_path)}
        if args.progress == "jsonl":
            print(json.dumps({"event": "done", "outputs": outputs}), flush=True)
        elif args.progress == "bar":
            print(f"wrote {args.out} ({len(data)} slices from {len(data.studies())} studies)")
    return 0
