"""Detect T2 hyperintensity in one study with 3D Slicer, without the GUI.

    Slicer --no-main-window --python-script batch_detect.py \\
        --image t2.nii.gz --cord cord.nii.gz [--levels levels.mrk.json | --levels C2_T2.nii.gz --levels-kind bodies] \\
        --out results/ [--model model.pt] [--device auto|cpu|cuda] [--mc 10] [--n-slices 1]

Loads the files into a scene, runs U2AD detection in its worker process (the U2AD module's
logic, blocking), saves the output nodes (anomaly map, "T2 hyperintensity" segmentation, score
table, AnoCurve table) under --out/slicer and the worker's own files (result.json, report.png,
maps) under --out/<volume name>, and exits with 0 on success, 2 on an input error, 130 when cancelled.
Slicer does not exit by itself after a --python-script, hence `slicer.util.exit`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import U2ADSlicerLib  # noqa: F401  (on sys.path when the U2AD module is loaded in Slicer)
except ImportError:  # run from a source checkout or with the module path not yet added
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from U2ADSlicerLib import landmarks, mrml
from U2ADSlicerLib.logic import U2ADLogic
from U2ADSlicerLib.pipeline import DetectionOutputs
from U2ADSlicerLib.worker import WorkerMessage, describe_progress

from u2adcore.errors import Cancelled, U2ADError

EXIT_OK, EXIT_INPUT, EXIT_CANCELLED = 0, 2, 130


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="batch_detect.py", description="U2AD detection of T2 hyperintensity in 3D Slicer batch mode.")
    p.add_argument("--image", required=True, type=Path, help="T2-weighted volume")
    p.add_argument("--cord", required=True, type=Path, help="spinal-cord mask (0/1 labelmap) on the image grid")
    p.add_argument("--levels", type=Path, help="vertebral levels: a .mrk.json point list or a disc/body label image")
    p.add_argument("--levels-kind", choices=("discs", "bodies"), help="what a levels label image holds")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--model", type=Path, help="U2AD model (.pt); default: the shipped model")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--mc", type=int, help="Monte-Carlo samples K (default: the model's config)")
    p.add_argument("--n-slices", type=int, help="sagittal slices analysed (default 1)")
    return p.parse_args(argv)


def load_inputs(scene, args: argparse.Namespace) -> tuple:
    """(volume, cord labelmap, levels markups or None) read through Slicer's storage nodes."""
    volume = mrml.load_volume(scene, args.image, "T2")
    cord = mrml.load_volume(scene, args.cord, "spinal cord", labelmap=True)
    levels = None
    if args.levels is not None:
        levels = landmarks.load_levels_file(scene, args.levels, args.levels_kind, args.image, args.cord, "vertebral levels")
    return volume, cord, levels


def save_outputs(outputs: DetectionOutputs, folder: Path) -> dict[str, Path]:
    """Every output node as a file Slicer opens again (drag and drop, or slicer.util.loadNodeFromFile)."""
    return {
        "anomaly_map": mrml.write_node(outputs.anomaly_map, folder / "anomaly_map.nii.gz"),
        "candidates": mrml.write_node(outputs.candidates, folder / "candidates.seg.nrrd"),
        "segment_scores": mrml.write_node(outputs.table, folder / "segment_scores.tsv"),
        "anocurve": mrml.write_node(outputs.chart.GetNthPlotSeriesNode(0).GetTableNode(), folder / "anocurve.tsv"),
    }


def _print_progress(message: WorkerMessage) -> None:
    if message.event == "progress":
        print(f"U2AD: {describe_progress(message.progress)}", flush=True)


def main(argv: list[str], scene, python: str | None = None) -> int:
    """Run one study; returns the process exit status (the caller exits with it)."""
    args = parse_args(argv)
    try:
        volume, cord, levels = load_inputs(scene, args)
        outputs = U2ADLogic(scene).process(
            volume, cord, levels, args.model, args.device,
            mc_samples=args.mc, n_slices=args.n_slices, output_dir=args.out, on_message=_print_progress, python=python,
        )
        saved = save_outputs(outputs, args.out / "slicer")
    except Cancelled as exc:
        print(f"U2AD: cancelled: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except (U2ADError, OSError) as exc:
        print(f"U2AD: {exc}", file=sys.stderr)
        return EXIT_INPUT
    summary = outputs.summary
    print(f"U2AD: patient score {summary.patient_score:.4f}: {summary.patient_verdict}")
    for row in summary.segments:
        print(f"U2AD:   {row.name}: {'-' if row.score is None else f'{row.score:.4f}'} ({row.verdict})")
    print(f"U2AD: saved {', '.join(str(p) for p in saved.values())}; worker files in {outputs.output_dir}")
    return EXIT_OK


if __name__ == "__main__":
    import slicer

    slicer.util.exit(main(sys.argv[1:], slicer.mrmlScene))
