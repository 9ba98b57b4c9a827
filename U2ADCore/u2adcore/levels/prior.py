"""The anatomical prior that fills in vertebral bodies between two known landmarks.

Clinics often mark only two bodies (e.g. C2 and T2); the segments between them still need
borders. We place the missing body centres at the fractions of the way between the two
landmarks that the PAM50 template (De Leener et al. 2018, an average of 50 healthy adults) gives.
The template cord is straight, so its z is distance along the cord; with a cord mask we lay the
fractions along the subject's cord centreline by arc length (a curved spine keeps its points on
the cord, and the lordotic neck is not compressed), otherwise along the straight line. Measured
against real manual discs in docs/LEVELS.md.

Six marked discs (C2-C3 … C7-T1) name six segments but bound only five bodies; the end bodies
C2 and T1 are placed the template's half-vertebra beyond the end disc, scaled by the subject's
neighbouring disc interval (`end_bodies_from_discs`).

How `PAM50_BODY_Z_MM` was derived (Testing/core/test_prior.py recomputes it from the files):
1. `PAM50_small_label_disc.nii.gz` (sct_testing_data, 1 x 1 x 2 mm) holds one voxel per disc,
   value k = the disc just above vertebra k (SCT convention). Each disc's position is that
   voxel's physical LPS z (mm).
2. A body centre is the midpoint of the disc above and the disc below it (METHOD.md §6), so body
   n sits at (z(disc n) + z(disc n + 1)) / 2. Discs 2..19 give C2..T11.
3. Checks against the other template files: every centre lies inside the extent of its own
   level in `PAM50_small_levels.nii.gz`, and the template cord (`PAM50_small_cord.nii.gz`) is
   straight (its centre moves < 1 mm in x and y), so template z is distance along the cord.
Only ratios of differences are used, so the template's origin and overall length cancel out.
C1 has no body and no disc above it, so it has no entry: it cannot anchor a fill.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter1d

# Disc LPS z (mm, superior is +z) in PAM50 template space, keyed by SCT disc number (3 = C2-C3).
PAM50_DISC_Z_MM: dict[int, float] = {
    2: 195.5, 3: 179.5, 4: 161.5, 5: 143.5, 6: 127.5, 7: 111.5, 8: 93.5, 9: 71.5, 10: 49.5,
    11: 25.5, 12: 1.5, 13: -22.5, 14: -48.5, 15: -76.5, 16: -102.5, 17: -130.5, 18: -158.5, 19: -190.5,
}
# Body-centre LPS z (mm, superior is +z) in PAM50 template space, keyed by vertebra: the
# midpoints of PAM50_DISC_Z_MM.
PAM50_BODY_Z_MM: dict[str, float] = {
    "C2": 187.5,
    "C3": 170.5,
    "C4": 152.5,
    "C5": 135.5,
    "C6": 119.5,
    "C7": 102.5,
    "T1": 82.5,
    "T2": 60.5,
    "T3": 37.5,
    "T4": 13.5,
    "T5": -10.5,
    "T6": -35.5,
    "T7": -62.5,
    "T8": -89.5,
    "T9": -116.5,
    "T10": -144.5,
    "T11": -174.5,
}


def cord_centreline(cord: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """The cord centre per image plane along the axis closest to superior-inferior.

    Returns (z, points): LPS z (mm) ascending and the (N, 3) LPS centre points. The centre is
    the centroid of the cord voxels of each plane, mapped through the image's affine (the
    centroid of voxel indices maps to the centroid of their physical points).
    """
    arr = sitk.GetArrayViewFromImage(cord)
    kji = np.argwhere(arr > 0)
    if kji.size == 0:
        return np.empty(0), np.empty((0, 3))
    ijk = kji[:, ::-1].astype(float)
    direction = np.asarray(cord.GetDirection(), dtype=float).reshape(3, 3)
    si_axis = int(np.argmax(np.abs(direction[2])))
    planes, inverse, counts = np.unique(ijk[:, si_axis], return_inverse=True, return_counts=True)
    sums = np.zeros((planes.size, 3))
    np.add.at(sums, inverse, ijk)
    centres = sums / counts[:, None]
    points = np.asarray(cord.GetOrigin()) + (centres * np.asarray(cord.GetSpacing())) @ direction.T
    order = np.argsort(points[:, 2])
    return points[order, 2], points[order]


@dataclass(frozen=True)
class Centreline:
    """The cord centreline parametrised by arc length, so the prior's fractions can be laid
    along the cord rather than along the straight superior-inferior axis (docs/LEVELS.md: on
    errsm_21's manual discs this halves the error of the two-landmark fill).

    The per-plane centroids are smoothed in-plane (Gaussian, SMOOTH_MM) before the arc length
    is summed, so voxel-level zig-zag of the centroid does not add length.
    """

    z: np.ndarray  # (N,) LPS z, ascending
    points: np.ndarray  # (N, 3) smoothed centre points
    arc: np.ndarray  # (N,) arc length from the lowest plane, mm, ascending

    SMOOTH_MM = 2.0


def centreline_of(cord: Optional[sitk.Image]) -> Optional[Centreline]:
    """The arc-length centreline of a cord mask, or None without a cord (or with under 2 planes)."""
    if cord is None:
        return None
    zs, points = cord_centreline(cord)
    if zs.size < 2:
        return None
    step = float(np.median(np.diff(zs))) or 1.0
    smooth = points.copy()
    smooth[:, :2] = gaussian_filter1d(points[:, :2], Centreline.SMOOTH_MM / step, axis=0, mode="nearest")
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(smooth, axis=0), axis=1))])
    return Centreline(z=zs, points=smooth, arc=arc)


def _covers(line: Optional[Centreline], *zs: float) -> bool:
    return line is not None and all(line.z[0] <= z <= line.z[-1] for z in zs)


def place_between(
    upper: tuple[float, np.ndarray],
    lower: tuple[float, np.ndarray],
    template_z: float,
    line: Optional[Centreline],
) -> np.ndarray:
    """The subject point at template height `template_z`, from two anchors given as
    (template z, LPS point), `upper` above `lower` in the template.

    The template fraction f = (z_upper - z) / (z_upper - z_lower) is laid along the cord's arc
    length when the cord covers both anchors and the result, else along the straight line
    between the anchors. f outside [0, 1] extrapolates with the anchors' own scale (the
    neighbouring segment's length), which `levels` uses for end bodies beyond a marked disc.
    """
    (tz_up, p_up), (tz_low, p_low) = upper, lower
    fraction = (tz_up - template_z) / (tz_up - tz_low)
    p_up, p_low = np.asarray(p_up, float), np.asarray(p_low, float)
    if _covers(line, p_up[2], p_low[2]):
        s_up, s_low = np.interp(p_up[2], line.z, line.arc), np.interp(p_low[2], line.z, line.arc)
        s = s_up + fraction * (s_low - s_up)
        if line.arc[0] <= s <= line.arc[-1]:
            return np.array([np.interp(s, line.arc, line.points[:, i]) for i in range(3)])
    return p_up + fraction * (p_low - p_up)


def fill_bodies(
    known: Mapping[str, np.ndarray], wanted: tuple[str, ...], cord: Optional[sitk.Image] = None
) -> dict[str, np.ndarray]:
    """Body centres for the `wanted` vertebrae missing from `known` that lie between two known
    bodies of the prior; never extrapolates beyond the outermost known ones.

    `known` maps vertebra names (any the prior covers, e.g. "T4") to LPS points. With a `cord`
    the points lie on its centreline at the prior's fraction of the arc length.
    """
    anchors = sorted((name for name in known if name in PAM50_BODY_Z_MM), key=lambda n: -PAM50_BODY_Z_MM[n])
    line = centreline_of(cord)
    filled = {}
    for upper, lower in zip(anchors, anchors[1:]):
        z_up, z_low = PAM50_BODY_Z_MM[upper], PAM50_BODY_Z_MM[lower]
        for name in wanted:
            z = PAM50_BODY_Z_MM.get(name)
            if name in known or z is None or not z_low < z < z_up:
                continue
            filled[name] = place_between((z_up, known[upper]), (z_low, known[lower]), z, line)
    return filled


def end_bodies_from_discs(
    discs: Mapping[int, np.ndarray], wanted: Mapping[str, int], cord: Optional[sitk.Image] = None
) -> dict[str, np.ndarray]:
    """Body centres just beyond the outermost marked discs: body n (SCT number) when disc n (above
    it) or disc n + 1 (below it) is marked but not both.

    The body sits the template's disc-to-centre distance beyond that disc, scaled by the
    neighbouring marked disc interval (the subject's own segment length). Needs two marked discs;
    `wanted` maps vertebra names to SCT numbers.
    """
    marked = sorted(n for n in discs if n in PAM50_DISC_Z_MM)
    if len(marked) < 2:
        return {}
    line = centreline_of(cord)
    out = {}
    for name, n in wanted.items():
        z = PAM50_BODY_Z_MM.get(name)
        if z is None or (n in discs) == (n + 1 in discs):
            continue
        above_top, below_bottom = n + 1 == marked[0], n == marked[-1]
        if not (above_top or below_bottom):
            continue  # a gap between marked discs: the interior fill places this body
        a, b = marked[:2] if above_top else marked[-2:]  # the marked interval next to the end disc
        out[name] = place_between((PAM50_DISC_Z_MM[a], discs[a]), (PAM50_DISC_Z_MM[b], discs[b]), z, line)
    return out
