"""`u2ad segment-cord IMAGE --out cord.nii.gz`: the built-in cord segmentation (docs/SEGMENTATION.md).

With `--progress jsonl` the last line is {"event": "done", "outputs": {"cord": PATH}, ...}: the
contract the Slicer module's worker reads.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Segment the spinal cord of a T2w image with the model shipped with the package (offline). "
        "The mask (uint8 0/1) is written on the image's own grid.",
    )
    p.add_argument("image", help="3D T2w image: .nii/.nii.gz/.nrrd/.mha or a DICOM series folder")
    p.add_argument("--out", required=True, help="output mask file (e.g. cord.nii.gz)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="where the network runs")
    p.add_argument("--model", default=None, help="segmentation checkpoint (.pt); default: the one shipped with the package")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def run(args: argparse.Namespace) -> int:
    from ..progress import ProgressEvent, emit
    from ..segmentation import segment_cord_file
    from .main import progress_callback

    cb = progress_callback(args)
    emit(cb, ProgressEvent("start", task="segment-cord", fraction=0.0, message=str(args.image)))
    info = segment_cord_file(args.image, args.out, model=args.model, device=args.device, overwrite=args.overwrite, progress=cb)
    out = str(Path(args.out))
    if args.progress == "jsonl":
        print(json.dumps({"event": "done", "outputs": {"cord": out}, "voxels": info["voxels"],
                          "timings_s": {k: round(v, 3) for k, v in info["timings_s"].items()}}), flush=True)
    else:
        t = info["timings_s"]
        print(f"cord: {info['voxels']} voxels ({info['volume_mm3'] / 1000:.1f} cm3) in {t['segment']:.1f} s -> {out}", flush=True)
    return 0
