"""Seconds from "Detect" to loaded results, first and second detection of a session, with the
warm worker (U2ADSlicerLib/warm.py) and with a fresh process each time. Prints the figures.

    PYTHONPATH=U2ADCore:U2ADSlicer python U2ADSlicer/Scripts/bench_warm_worker.py IMAGE CORD [--mc 10]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import slicer  # slicer-core, or the application

from U2ADSlicerLib import mrml, pipeline
from U2ADSlicerLib.parameters import Inputs, Settings
from U2ADSlicerLib.warm import WarmSession


def one(scene, inputs, settings, session):
    start = time.monotonic()
    job = pipeline.start_detection(scene, inputs, settings, python=sys.executable, session=session)
    while not job.worker.finished:
        job.worker.poll()
        time.sleep(0.01)
    pipeline.finish_detection(scene, job, pipeline.read_outputs(job.out_dir))
    return time.monotonic() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("image", type=Path)
    p.add_argument("cord", type=Path)
    p.add_argument("--mc", type=int, default=10)
    args = p.parse_args()
    scene = slicer.vtkMRMLScene()
    inputs = Inputs(mrml.load_volume(scene, args.image, "T2"), mrml.load_volume(scene, args.cord, "cord", labelmap=True))
    settings = Settings(device="cpu", mc_samples=args.mc)
    session = WarmSession(sys.executable)
    try:
        warm = [one(scene, inputs, settings, session) for _ in range(3)]
    finally:
        session.stop()
    cold = [one(scene, inputs, settings, None) for _ in range(2)]
    print(f"warm worker: first {warm[0]:.2f} s, then {', '.join(f'{t:.2f}' for t in warm[1:])} s (click to loaded results)")
    print(f"fresh process each time: {', '.join(f'{t:.2f}' for t in cold)} s")


if __name__ == "__main__":
    main()
