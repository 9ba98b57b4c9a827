"""`u2ad adapt`: uncertainty-guided adaptation of a pretrained EdgeMAE to the target studies
(METHOD.md §5), the U2AD way (training strategy 3). Adaptation is transductive: the studies
adapted on are the ones then scored with `u2ad detect --model ADAPTED.pt`."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..config import AdaptConfig


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Adapt a pretrained EdgeMAE to the studies of a manifest: EU-guided masking (high-uncertainty "
        "cord patches masked more often), then EU+AU (patches touching anomaly candidates never masked), with the "
        "uncertainty maps refreshed by Monte-Carlo inference every few epochs. Writes ADAPTED.pt, its loss curve "
        "(ADAPTED_loss.csv/.png) and the refreshed maps (ADAPTED_uncertainty.npz, used by --resume).",
    )
    p.add_argument("--manifest", required=True, type=Path, help="CSV manifest of the target studies")
    p.add_argument("--model", type=Path, help="pretrained checkpoint (default: the shipped model)")
    p.add_argument("--out", required=True, type=Path, help="adapted checkpoint to write (ADAPTED.pt)")
    p.add_argument("--strategy", choices=("random", "eu", "eu+au"), default=AdaptConfig.strategy,
                   help="masking: random (plain fine-tuning), eu (stage 1 only) or eu+au (default)")
    p.add_argument("--schedule", choices=("auto", "cpu", "paper"), default=AdaptConfig.schedule,
                   help=f"cpu ({AdaptConfig.cpu_epochs} epochs, stage 2 from {AdaptConfig.cpu_stage2_start}, refresh every "
                   f"{AdaptConfig.cpu_refresh_every}, K={AdaptConfig.cpu_mc_samples}) or paper ({AdaptConfig.epochs} epochs, "
                   f"stage 2 from {AdaptConfig.stage2_start}, refresh every {AdaptConfig.refresh_every}, "
                   f"K={AdaptConfig.mc_samples}); auto (default) = cpu on a CPU, paper on a GPU")
    p.add_argument("--epochs", type=int, help="override the schedule's number of epochs")
    p.add_argument("--stage2-start", type=int, help="override the epoch at which EU+AU starts")
    p.add_argument("--refresh-every", type=int, help="override how often (epochs) the uncertainty maps are refreshed")
    p.add_argument("--mc-samples", type=int, help="override K, the reconstructions per patch of a refresh")
    p.add_argument("--temperature", type=float, default=AdaptConfig.temperature, help="softmax temperature T (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=AdaptConfig.batch_size, help="batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=AdaptConfig.lr, help="initial learning rate (default %(default)s)")
    p.add_argument("--n-slices", type=int, default=AdaptConfig.n_slices, help="sagittal slices per study (default %(default)s)")
    p.add_argument("--seed", type=int, default=AdaptConfig.seed)
    p.add_argument("--device", default=AdaptConfig.device, help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def config_from_args(args: argparse.Namespace, device) -> AdaptConfig:
    """The AdaptConfig the arguments describe, with the schedule made concrete for `device`."""
    from ..uncertainty.adapt import SCHEDULE_FIELDS, override_schedule

    cfg = AdaptConfig(strategy=args.strategy, schedule=args.schedule, temperature=args.temperature,
                      batch_size=args.batch_size, lr=args.lr, n_slices=args.n_slices, seed=args.seed, device=args.device)
    overrides = {k: getattr(args, k) for k in SCHEDULE_FIELDS if getattr(args, k, None) is not None}
    return override_schedule(cfg, device, **overrides)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError, OutputExistsError
    from ..resources import default_model_path
    from ..training.checkpoint import load_checkpoint
    from ..training.distributed import resolve_device
    from ..training.loop import loss_curve_paths
    from ..training.pretrain import load_sources, manifest_source
    from ..uncertainty.adapt import adapt, maps_path
    from .main import progress_callback

    if args.out.exists() and not (args.resume or args.overwrite):
        raise OutputExistsError(f"{args.out}: already exists; pass --resume to continue it or --overwrite to replace it")
    model_path = args.model or default_model_path()
    if not model_path.is_file():
        raise InputError(model_path, "no such model file" + ("" if args.model else " (the shipped model is missing; pass --model)"))
    device = resolve_device(args.device)
    cfg = config_from_args(args, device)
    progress = progress_callback(args)
    loaded = load_checkpoint(model_path)
    source = manifest_source(args.manifest)
    preprocess = dataclasses.replace(loaded.config.preprocess, n_slices=cfg.n_slices, slices=None)
    data = load_sources([source], preprocess, progress=progress, task="adapt")
    training_data = {**data.summary(), "sources": [source.record()]}
    adapt(loaded, data, cfg, out_path=args.out, progress=progress, resume=args.resume, training_data=training_data)
    csv_path, png_path = loss_curve_paths(args.out)
    outputs = {"model": str(args.out), "loss_csv": str(csv_path), "loss_png": str(png_path)}
    if maps_path(args.out).exists():  # not with --strategy random
        outputs["uncertainty"] = str(maps_path(args.out))
    if args.progress == "jsonl":
        print(json.dumps({"event": "done", "outputs": outputs}), flush=True)
    elif args.progress == "bar":
        print(f"wrote {args.out} ({len(data)} slices from {len(data.studies())} studies, {cfg.schedule} schedule)")
    return 0
