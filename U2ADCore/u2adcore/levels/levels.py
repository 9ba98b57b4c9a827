"""Vertebral levels: where each intervertebral segment (C2-C3 … C7-T1) lies (METHOD.md §6).

A segment spans from one vertebral body centre to the next, so everything is reduced to body
centres in physical space (LPS mm): given directly, as midpoints of the discs above and below,
or filled in between two known bodies from the PAM50 prior. Points stay in physical space, so a
label file on its own grid loses nothing; they meet the 2D grid only in `segment_rows`.

Numbers follow the Spinal Cord Toolbox: vertebra n (C1=1 … C7=7, T1=8 … T12=19, L1=20 … L5=24,
S1=25); disc k is the disc just above vertebra k (3 = C2-C3, 8 = C7-T1). Whether a label image
holds discs or bodies cannot be read from its values, so the caller must say; a guess could
shift every segment by half a vertebra without any visible failure.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import SimpleITK as sitk

from ..config import SEGMENTS, VERTEBRAE
from ..errors import InputError
from ..io.images import read_image
from .markups import read_markup_points
from .prior import end_bodies_from_discs, fill_bodies

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("discs", "bodies")
# Region letter, first and last SCT number of that region.
_REGIONS: tuple[tuple[str, int, int], ...] = (("C", 1, 7), ("T", 8, 19), ("L", 20, 24), ("S", 25, 25))
MAX_NUMBER = _REGIONS[-1][2]
PRIOR_SUFFIX = "+PAM50 prior"
_BODY_RE = re.compile(r"^([CTLS])(\d{1,2})$", re.IGNORECASE)
_DISC_RE = re.compile(r"^([CTLS]\d{1,2})\s*[-/]\s*([CTLS]\d{1,2})$", re.IGNORECASE)
KIND_HELP = (
    "pass --levels-kind discs (value k = the disc above vertebra k: 3 = C2-C3 … 8 = C7-T1) "
    "or --levels-kind bodies (value n = vertebral body n: C1 = 1 … C7 = 7, T1 = 8, T2 = 9)"
)


def vertebra_name(number: int) -> str:
    """SCT vertebra number -> name (8 -> "T1")."""
    for letter, first, last in _REGIONS:
        if first <= number <= last:
            return f"{letter}{number - first + 1}"
    raise ValueError(f"no vertebra has number {number} (1..{MAX_NUMBER})")


def vertebra_number(name: str) -> Optional[int]:
    """Vertebra name -> SCT number ("t1" -> 8); None for anything that is not a vertebra."""
    match = _BODY_RE.match(name.strip())
    if not match:
        return None
    letter, index = match.group(1).upper(), int(match.group(2))
    for region, first, last in _REGIONS:
        if region == letter and 1 <= index <= last - first + 1:
            return first + index - 1
    return None


def disc_name(number: int) -> str:
    """SCT disc number -> name (3 -> "C2-C3")."""
    return f"{vertebra_name(number - 1)}-{vertebra_name(number)}" if number > 1 else "above C1"


def parse_level_label(label: str) -> Optional[tuple[str, int]]:
    """A markups label -> ("bodies", n) for "C3", ("discs", k) for "C2-C3"; None otherwise.

    A disc label must name two neighbouring vertebrae, upper first.
    """
    body = vertebra_number(label)
    if body is not None:
        return "bodies", body
    match = _DISC_RE.match(label.strip())
    if match:
        upper, lower = vertebra_number(match.group(1)), vertebra_number(match.group(2))
        if upper is not None and lower == upper + 1:
            return "discs", lower
    return None


@dataclass(frozen=True)
class Levels:
    """Vertebral-body centres of one study (LPS mm), keyed by names from config.VERTEBRAE."""

    bodies: dict[str, np.ndarray]
    source: str  # "discs" | "bodies" | "markups:discs" | "markups:bodies", + "+PAM50 prior" when filled
    inferred: tuple[str, ...] = ()  # bodies filled from the prior, not marked
    path: Optional[str] = None

    def segment_points(self, name: str) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(upper body centre, lower body centre) of segment `name`, or None when either is unknown."""
        if name not in SEGMENTS:
            raise ValueError(f"unknown segment {name!r}; segments are {', '.join(SEGMENTS)}")
        upper, lower = name.split("-")
        if upper in self.bodies and lower in self.bodies:
            return self.bodies[upper], self.bodies[lower]
        return None

    @property
    def unknown_segments(self) -> tuple[str, ...]:
        """Segments these levels cannot place (their end bodies were neither marked nor between two marks)."""
        return tuple(s for s in SEGMENTS if self.segment_points(s) is None)


def bodies_from_discs(discs: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Body n = midpoint of disc n (above it) and disc n + 1 (below it), where both are known."""
    return {n: (np.asarray(discs[n], float) + np.asarray(discs[n + 1], float)) / 2 for n in discs if n + 1 in discs}


def _require_kind(kind: Optional[str], path) -> None:
    if kind not in KINDS:
        raise InputError(path, f"unknown levels kind {kind!r}; {KIND_HELP}")


def _check_order(points: Mapping[int, np.ndarray], kind: str, path) -> None:
    """Higher numbers must lie further inferior (lower LPS z); anything else is a mislabelled file."""
    name = disc_name if kind == "discs" else vertebra_name
    numbers = sorted(points)
    for above, below in zip(numbers, numbers[1:]):
        if not points[below][2] < points[above][2]:
            raise InputError(
                path,
                f"levels are not ordered superior to inferior: {name(below)} (z = {points[below][2]:.1f} mm) "
                f"is not below {name(above)} (z = {points[above][2]:.1f} mm); check the labels",
            )


def build_levels(
    points: Mapping[int, np.ndarray],
    kind: str,
    *,
    source: Optional[str] = None,
    cord: Optional[sitk.Image] = None,
    path: Union[str, Path, None] = None,
) -> Levels:
    """Levels from SCT-numbered LPS points of one kind; bodies between two known ones are filled
    from the PAM50 prior (on the cord centre when `cord` is given), and from discs the body just
    beyond each end disc too, so six discs C2-C3 … C7-T1 give all six segments. Filled bodies are
    listed in `inferred`. Raises InputError when no segment can be placed."""
    _require_kind(kind, path)
    bad = sorted(n for n in points if not 1 <= n <= MAX_NUMBER)
    if bad:
        raise InputError(path, f"{kind} label values {bad} are outside 1..{MAX_NUMBER} (SCT vertebral numbering); {KIND_HELP}")
    points = {int(n): np.asarray(p, dtype=float) for n, p in points.items()}
    _check_order(points, kind, path)
    known = {vertebra_name(n): p for n, p in (bodies_from_discs(points) if kind == "discs" else points).items()}
    filled = fill_bodies(known, VERTEBRAE, cord)
    if kind == "discs":
        borders = dict.fromkeys(body for segment in SEGMENTS for body in segment.split("-"))  # C2 … T1
        ends = {name: vertebra_number(name) for name in borders if name not in known and name not in filled}
        filled.update(end_bodies_from_discs(points, ends, cord))
    merged = {**filled, **known}
    bodies = {name: merged[name] for name in VERTEBRAE if name in merged}
    inferred = tuple(name for name in VERTEBRAE if name in filled)
    source = (source or kind) + (PRIOR_SUFFIX if inferred else "")
    levels = Levels(bodies=bodies, source=source, inferred=inferred, path=None if path is None else str(path))
    if len(levels.unknown_segments) == len(SEGMENTS):
        name = disc_name if kind == "discs" else vertebra_name
        found = ", ".join(name(n) for n in sorted(points)) or "nothing"
        raise InputError(
            path,
            f"no segment ({SEGMENTS[0]} … {SEGMENTS[-1]}) can be placed from these {kind} (found {found}); "
            "a segment needs the body centres above and below it, or the discs around both bodies",
        )
    return levels


def label_points(image: sitk.Image, path: Union[str, Path, None] = None) -> dict[int, np.ndarray]:
    """Label value -> centroid of its voxels in physical space (LPS). Values must be whole numbers."""
    arr = sitk.GetArrayViewFromImage(image)
    kji = np.argwhere(arr != 0)
    if kji.size == 0:
        raise InputError(path, "the levels label image has no nonzero voxel (no level is marked)")
    values = np.asarray(arr)[tuple(kji.T)]
    fractional = np.unique(values[values != np.round(values)])
    if fractional.size:
        raise InputError(path, f"levels label values must be whole numbers, found {fractional[:5].tolist()}")
    points = {}
    for value in np.unique(values):
        centroid = kji[values == value][:, ::-1].mean(axis=0)
        points[int(value)] = np.asarray(image.TransformContinuousIndexToPhysicalPoint(centroid.tolist()))
    return points


def _markup_levels(path: Path) -> tuple[str, dict[int, np.ndarray]]:
    """(kind, SCT-numbered points) from a markups file whose labels name discs or bodies."""
    parsed, unknown, points = set(), [], {}
    for point in read_markup_points(path):
        level = parse_level_label(point.label)
        if level is None:
            unknown.append(point.label)
            continue
        if level in parsed:
            raise InputError(path, f"control point label {point.label!r} appears more than once")
        parsed.add(level)
        points[level[1]] = point.position
    kinds = {k for k, _ in parsed}
    if not parsed:
        shown = ", ".join(repr(u) for u in unknown[:5]) or "no defined control point"
        raise InputError(path, f"no control-point label names a disc (e.g. 'C2-C3') or a vertebral body (e.g. 'C3'); found {shown}")
    if unknown:
        raise InputError(path, f"control-point labels {unknown[:5]} name neither a disc (e.g. 'C2-C3') nor a vertebral body (e.g. 'C3')")
    if len(kinds) > 1:
        raise InputError(path, "control-point labels mix discs (e.g. 'C2-C3') and vertebral bodies (e.g. 'C3'); use one kind per file")
    return kinds.pop(), points


def _check_inside(points: Mapping[int, np.ndarray], kind: str, reference: sitk.Image, path) -> None:
    """Every point must fall on the reference image (one voxel of slack), else the file belongs
    to another scan or another space."""
    name = disc_name if kind == "discs" else vertebra_name
    size = np.asarray(reference.GetSize(), dtype=float)
    for number, point in sorted(points.items()):
        index = np.asarray(reference.TransformPhysicalPointToContinuousIndex(point.tolist()))
        if np.any(index < -1.5) or np.any(index > size + 0.5):
            coords = ", ".join(f"{v:.1f}" for v in point)
            raise InputError(path, f"{kind} label {name(number)} at LPS ({coords}) mm lies outside the image; is this file for another scan?")


def read_levels(
    path: Union[str, Path],
    kind: Optional[str],
    reference: sitk.Image,
    cord: Optional[sitk.Image] = None,
) -> Levels:
    """Levels from a label image (kind "discs" or "bodies" must be given) or a Slicer `.mrk.json`
    point list (kind read from its labels; if given, it must agree).

    `reference` is the study image, used to refuse points that are not on it; `cord` (any grid)
    places prior-filled bodies on the cord centre.
    """
    path = Path(path)
    if path.name.lower().endswith(".json"):
        found, points = _markup_levels(path)
        if kind is not None and kind != found:
            raise InputError(path, f"the control-point labels name {found} but levels kind {kind!r} was asked for")
        kind, source = found, f"markups:{found}"
    else:
        if kind is None:
            raise InputError(path, f"a label image does not say whether its values are discs or vertebral bodies; {KIND_HELP}")
        _require_kind(kind, path)
        points, source = label_points(read_image(path, what="levels label image"), path), kind
    levels = build_levels(points, kind, source=source, cord=cord, path=path)
    _check_inside(points, kind, reference, path)
    if levels.inferred:
        log.info("%s: bodies %s filled in from the PAM50 prior", path, ", ".join(levels.inferred))
    if levels.unknown_segments:
        log.warning("%s: segments %s cannot be placed (levels missing at the ends); they get no score", path, ", ".join(levels.unknown_segments))
    return levels


def segment_rows(levels: Levels, prepared_slice, canonical_ref: sitk.Image) -> dict[str, Optional[tuple[float, float]]]:
    """Row span (upper body row, lower body row) of each of config.SEGMENTS in the slice's
    256 grid, or None for segments the levels cannot place. Rows may fall outside the grid when
    a segment reaches beyond the crop."""
    names = list(levels.bodies)
    if not names:
        return {s: None for s in SEGMENTS}
    coords = prepared_slice.transform.grid_coords_of_points(canonical_ref, np.stack([levels.bodies[n] for n in names]))
    row = {name: float(coords[i, 0]) for i, name in enumerate(names)}
    return {s: None if s in levels.unknown_segments else tuple(row[v] for v in s.split("-")) for s in SEGMENTS}
