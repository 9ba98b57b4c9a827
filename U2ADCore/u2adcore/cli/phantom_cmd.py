"""`u2ad phantom`: write synthetic T2w cervical spine studies and a manifest for them.

The studies stand in for healthy (or lesioned) scans where no real data may be shared: tests,
demos and pretraining. The manifest they come with is what every batch command reads.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

from ..config import PhantomConfig


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Write N synthetic sagittal T2-weighted cervical spine studies (image, cord mask, "
        "disc labels, lesion mask as .nii.gz) and a manifest.csv listing them. The same seed gives "
        "the same studies.",
    )
    p.add_argument("--out", required=True, help="output folder (created; refused if it holds other files, unless --overwrite)")
    p.add_argument("--n", type=int, default=10, help="number of studies (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--lesions", type=int, default=None, metavar="K", help="give every study exactly K lesions (0: all healthy)")
    group.add_argument(
        "--lesion-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="give this fraction of the studies %d-%d lesions each, the rest none (default 0)" % PhantomConfig.lesions_per_study,
    )
    p.add_argument("--n-slices", type=int, default=PhantomConfig.n_slices, help="sagittal slices per study")
    p.add_argument("--slice-mm", type=float, default=PhantomConfig.slice_mm, help="left-right slice spacing (mm)")
    p.add_argument("--pixel-mm", type=float, default=PhantomConfig.pixel_mm, help="in-plane pixel spacing (mm)")
    p.add_argument("--orientation", default=PhantomConfig.orientation, help="voxel-axis orientation letters, e.g. PSR, LPS, RAS")
    p.add_argument("--overwrite", action="store_true", help="replace files in a non-empty output folder")
    return p


def _config(args: argparse.Namespace) -> tuple[PhantomConfig, float]:
    """The phantom settings and lesion fraction the arguments ask for."""
    cfg = PhantomConfig(n_slices=args.n_slices, slice_mm=args.slice_mm, pixel_mm=args.pixel_mm, orientation=args.orientation.upper())
    if args.lesions is None:
        return cfg, args.lesion_fraction
    return dataclasses.replace(cfg, lesions_per_study=(args.lesions, args.lesions)), float(args.lesions > 0)


def run(args: argparse.Namespace) -> int:
    from ..data.phantom import write_phantom_set
    from ..errors import InputError
    from .main import progress_callback

    if args.lesions is not None and args.lesions < 0:
        raise InputError("--lesions", f"must be >= 0, got {args.lesions}")
    cfg, fraction = _config(args)
    manifest = write_phantom_set(args.out, args.n, args.seed, fraction, cfg=cfg, overwrite=args.overwrite, progress=progress_callback(args))
    if args.progress == "jsonl":
        print(json.dumps({"event": "done", "outputs": {"manifest": str(manifest), "folder": str(manifest.parent)}}), flush=True)
    elif args.progress == "bar":
        print(f"wrote {args.n} studies and {manifest}")
    return 0
