"""Small studies and detection output folders written to the documented schema (docs/ARCHITECTURE.md),
so the MRML side can be tested on exact, known content without running a model."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from u2adcore.config import SEGMENTS, ScoringConfig, U2ADConfig, to_dict

SHAPE_ZYX = (12, 40, 30)  # numpy order of a small, anisotropic, left-handed (det < 0) grid
SPACING = (0.8, 0.9, 1.5)
ORIGIN = (12.5, -40.0, 7.25)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _on_grid(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    return image


def write_study(folder: Path) -> dict[str, Path]:
    """A T2-like image and a cord mask (a bar along y) on the small grid."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    image = rng.normal(100, 5, SHAPE_ZYX).astype(np.float32)
    cord = np.zeros(SHAPE_ZYX, np.uint8)
    cord[4:8, 5:35, 12:18] = 1
    paths = {"image": folder / "t2.nii.gz", "cord": folder / "cord.nii.gz"}
    sitk.WriteImage(_on_grid(image), str(paths["image"]))
    sitk.WriteImage(_on_grid(cord), str(paths["cord"]))
    return paths


def write_outputs(folder: Path, *, with_candidates: bool = True, thresholds=(0.3, 0.2)) -> dict:
    """A detection output folder; returns what was written so tests can compare."""
    folder.mkdir(parents=True, exist_ok=True)
    amap = np.zeros(SHAPE_ZYX, np.float32)
    amap[6, 5:35, 12:18] = np.linspace(0.0, 0.8, 30, dtype=np.float32)[:, None]
    candidates = np.zeros(SHAPE_ZYX, np.uint8)
    if with_candidates:
        candidates[6, 28:34, 13:16] = 1
        candidates[6, 10:12, 14:16] = 2
    sitk.WriteImage(_on_grid(amap), str(folder / "anomaly_map.nii.gz"))
    sitk.WriteImage(_on_grid(candidates), str(folder / "candidates.nii.gz"))
    positions = np.arange(30, dtype=float) * 0.9
    values = np.linspace(0.0, 0.6, 30)
    borders = np.linspace(2.0, 24.5, len(SEGMENTS) + 1)
    segments = []
    for i, name in enumerate(SEGMENTS):
        known = i < 5  # C7-T1 unknown: its lower body is outside the image
        inside = (positions >= borders[i]) & (positions < borders[i + 1])
        score = float(values[inside].max()) if known else None
        segments.append(
            {
                "name": name,
                "score": score,
                "known": known,
                "start_mm": float(borders[i]) if known else None,
                "end_mm": float(borders[i + 1]) if known else None,
                "positive": (score > thresholds[1]) if known and thresholds else None,
                "inferred": name == "C4-C5",
            }
        )
    cfg = U2ADConfig(scoring=ScoringConfig(display_max=0.4))
    result = {
        "study_id": "small",
        "segments": segments,
        "patient_score": float(values.max()),
        "patient_positive": bool(values.max() > thresholds[0]) if thresholds else None,
        "thresholds": {"patient": thresholds[0], "segment": thresholds[1]} if thresholds else None,
        "settings": to_dict(cfg),
    }
    (folder / "result.json").write_text(json.dumps(result))
    with (folder / "curve.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["position_mm", "anocurve", "segment"])
        for p, v in zip(positions, values):
            w.writerow([p, v, ""])
    return {"amap": amap, "candidates": candidates, "result": result, "display_max": 0.4}
