"""`u2ad inspect`: what the pipeline will make of a study, before any model runs.

It answers the questions that go wrong first with a new scanner or site: is the orientation
read right, is the cord mask on the image, which slices will be analysed, are the levels
understood. numpy/SimpleITK are imported inside the functions so that `u2ad --help` stays fast.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import SEGMENTS, PreprocessConfig


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Read a study and print its orientation, size, spacing, cord extent, the selected "
        "sagittal slices and, when given, the vertebral levels. Nothing is written.",
    )
    p.add_argument("image", help="3D image: .nii/.nii.gz/.nrrd/.mha or a DICOM series folder")
    p.add_argument("--cord", required=True, help="spinal-cord mask (0/1, or give --cord-label)")
    p.add_argument("--cord-label", type=int, default=None, help="use voxels with this value of a multi-label mask as the cord")
    p.add_argument("--levels", default=None, help="vertebral levels: a label image or a Slicer .mrk.json point list")
    p.add_argument("--levels-kind", choices=("discs", "bodies"), default=None, help="what the values of a levels label image mean")
    p.add_argument("--n-slices", type=int, default=PreprocessConfig.n_slices, help="sagittal slices centred on the mid-sagittal one")
    p.add_argument("--slices", type=int, nargs="+", default=None, help="explicit canonical left-right slice indices (overrides --n-slices)")
    return p


def cord_extent_si(cord) -> tuple[float, float]:
    """(most superior, most inferior) LPS z (mm) of the cord's voxel centres (a sitk.Image);
    physical, so it is right for any orientation, oblique included."""
    import numpy as np
    import SimpleITK as sitk

    kji = np.argwhere(sitk.GetArrayViewFromImage(cord) > 0)
    ijk = kji[:, ::-1] * np.asarray(cord.GetSpacing())
    direction = np.asarray(cord.GetDirection()).reshape(3, 3)
    z = cord.GetOrigin()[2] + ijk @ direction[2]
    return float(z.max()), float(z.min())


def describe(study, cfg: PreprocessConfig) -> dict[str, Any]:
    """A JSON-able summary of a loaded study and the slices `cfg` selects. The study's image keeps
    the file's direction, so its orientation code is the file's."""
    import SimpleITK as sitk

    from ..volume.orientation import orientation_code, to_canonical
    from ..volume.slices import mid_sagittal_index, select_slices

    cord_canonical = sitk.GetArrayFromImage(to_canonical(study.cord))
    top, bottom = cord_extent_si(study.cord)
    summary: dict[str, Any] = {
        "id": study.id,
        "orientation": orientation_code(study.image),
        "size": list(study.image.GetSize()),
        "spacing_mm": [round(s, 4) for s in study.image.GetSpacing()],
        "cord_superior_z_mm": round(top, 2),
        "cord_inferior_z_mm": round(bottom, 2),
        "cord_extent_si_mm": round(top - bottom, 2),
        "n_sagittal_slices": int(cord_canonical.shape[0]),
        "mid_sagittal_slice": mid_sagittal_index(cord_canonical),
        "selected_slices": select_slices(cord_canonical, cfg.n_slices, cfg.slices),
    }
    levels = study.levels
    if levels is not None:
        summary["levels"] = {
            "source": levels.source,
            "bodies": list(levels.bodies),
            "inferred": list(levels.inferred),
            "segments_known": [s for s in SEGMENTS if s not in levels.unknown_segments],
            "segments_unknown": list(levels.unknown_segments),
        }
    return summary


def render(summary: dict[str, Any]) -> str:
    size, sp = summary["size"], summary["spacing_mm"]
    lines = [
        f"study:          {summary['id']}",
        f"orientation:    {summary['orientation']} (voxel axes point toward these directions; analysed as PIL)",
        f"size:           {' x '.join(str(s) for s in size)} voxels",
        f"spacing:        {' x '.join(f'{s:g}' for s in sp)} mm",
        f"cord extent:    {summary['cord_extent_si_mm']:.1f} mm S-I (z {summary['cord_superior_z_mm']:.1f} to {summary['cord_inferior_z_mm']:.1f} mm LPS)",
        f"mid-sagittal:   slice {summary['mid_sagittal_slice']} of {summary['n_sagittal_slices']} (canonical left-right index)",
        f"slices:         {', '.join(str(i) for i in summary['selected_slices'])}",
    ]
    lv = summary.get("levels")
    if lv is not None:
        inferred = f" (inferred from the PAM50 prior: {', '.join(lv['inferred'])})" if lv["inferred"] else ""
        lines += [
            f"levels:         {lv['source']}",
            f"bodies:         {', '.join(lv['bodies']) or 'none'}{inferred}",
            f"segments known: {', '.join(lv['segments_known']) or 'none'}",
        ]
        if lv["segments_unknown"]:
            lines.append(f"segments unknown: {', '.join(lv['segments_unknown'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..io.study import load_study

    study = load_study(args.image, args.cord, levels=args.levels, levels_kind=args.levels_kind, cord_label=args.cord_label)
    cfg = PreprocessConfig(n_slices=args.n_slices, slices=args.slices)
    summary = describe(study, cfg)
    if args.progress == "jsonl":
        print(json.dumps({"event": "done", "outputs": {}, "summary": summary}), flush=True)
    else:
        print(render(summary))
    return 0
