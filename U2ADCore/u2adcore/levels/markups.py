"""Slicer markups point lists (`.mrk.json`) in and out, as labelled LPS points.

We read the JSON ourselves so the headless library needs no Slicer. This module knows the file
format only; what a label means (a disc, a body) is decided in `levels.levels`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, Union

import numpy as np

from ..errors import InputError
from ..io.atomic import write_text

if TYPE_CHECKING:
    from .levels import Levels

SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"
# RAS -> LPS (and back) negates the first two coordinates.
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class MarkupPoint:
    label: str
    position: np.ndarray  # (3,) LPS mm
    description: str = ""


def _position(raw, path: Path, label: str) -> np.ndarray:
    if not (isinstance(raw, list) and len(raw) == 3 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in raw)):
        raise InputError(path, f"control point {label!r} has no valid position (expected 3 finite numbers, got {raw!r})")
    return np.asarray(raw, dtype=float)


def read_markup_points(path: Union[str, Path]) -> list[MarkupPoint]:
    """The defined control points of the file's first markups node, in LPS.

    Points whose positionStatus is "undefined" (placed in the list but never positioned) are
    skipped; both "LPS" and "RAS" files are accepted (Slicer writes LPS since 4.11).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "markups file not found")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a valid markups JSON file ({exc})") from None
    nodes = doc.get("markups") if isinstance(doc, dict) else None
    if not nodes or not isinstance(nodes, list) or not isinstance(nodes[0], dict):
        raise InputError(path, "no markups node in the file (expected a Slicer .mrk.json with a 'markups' list)")
    node = nodes[0]
    system = node.get("coordinateSystem", "LPS")
    if system not in ("LPS", "RAS"):
        raise InputError(path, f"unknown coordinateSystem {system!r} (expected 'LPS' or 'RAS')")
    flip = _RAS_TO_LPS if system == "RAS" else np.ones(3)
    control_points = node.get("controlPoints") or []
    if not isinstance(control_points, list) or not all(isinstance(cp, dict) for cp in control_points):
        raise InputError(path, "'controlPoints' must be a list of objects")
    points = []
    for cp in control_points:
        if cp.get("positionStatus", "defined") == "undefined":
            continue
        label = str(cp.get("label", "")).strip()
        points.append(MarkupPoint(label, _position(cp.get("position"), path, label) * flip, str(cp.get("description", ""))))
    return points


def write_markup_points(points: Sequence[MarkupPoint], path: Union[str, Path]) -> None:
    """A point list Slicer opens (schema 1.0.3, LPS, mm), written atomically."""
    control_points = [
        {
            "id": str(i + 1),
            "label": p.label,
            "description": p.description,
            "position": [float(v) for v in p.position],
            "positionStatus": "defined",
        }
        for i, p in enumerate(points)
    ]
    doc = {
        "@schema": SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "labelFormat": "%N-%d",
                "controlPoints": control_points,
            }
        ],
    }
    write_text(path, json.dumps(doc, indent=2) + "\n")


def write_markups(levels: "Levels", path: Union[str, Path]) -> None:
    """The body centres of `levels` as a point list labelled "C2", "C3", …; prior-filled points
    say so in their description, so a user can tell them from the ones that were marked."""
    points = [
        MarkupPoint(name, point, "filled in from the PAM50 prior" if name in levels.inferred else "")
        for name, point in levels.bodies.items()
    ]
    write_markup_points(points, path)
