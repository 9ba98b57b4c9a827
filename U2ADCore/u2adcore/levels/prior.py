"""The anatomical prior that fills in vertebral bodies between two known landmarks.

Clinics often mark only two bodies (e.g. C2 and T2); the segments between them still need
borders. We place the missing body centres at the fractions of the way between the two
landmarks that the PAM50 template (De Leener et al. 2018, an average of 50 healthy adults) gives,
measured along the superior-inferior axis, and then move each point onto the cord centre at
that height, so a curved spine keeps its points inside the cord.

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

from typing import Mapping, Optional

import numpy as np
import SimpleITK as sitk

# Body-centre LPS z (mm, superior is +z) in PAM50 template space, keyed by vertebra.
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


def _place(upper: np.ndarray, lower: np.ndarray, fraction: float, centreline) -> np.ndarray:
    """The point `fraction` of the way from `upper` to `lower` in z, on the cord centre if the
    cord covers that height, else on the straight line between the two landmarks."""
    z = upper[2] + fraction * (lower[2] - upper[2])
    zs, points = centreline
    if zs.size >= 2 and zs[0] <= z <= zs[-1]:
        return np.array([np.interp(z, zs, points[:, 0]), np.interp(z, zs, points[:, 1]), z])
    return upper + fraction * (lower - upper)


def fill_bodies(
    known: Mapping[str, np.ndarray], wanted: tuple[str, ...], cord: Optional[sitk.Image] = None
) -> dict[str, np.ndarray]:
    """Body centres for the `wanted` vertebrae missing from `known` that lie between two known
    bodies of the prior; never extrapolates beyond the outermost known ones.

    `known` maps vertebra names (any the prior covers, e.g. "T4") to LPS points.
    """
    anchors = sorted((name for name in known if name in PAM50_BODY_Z_MM), key=lambda n: -PAM50_BODY_Z_MM[n])
    centreline = cord_centreline(cord) if cord is not None else (np.empty(0), np.empty((0, 3)))
    filled = {}
    for upper, lower in zip(anchors, anchors[1:]):
        z_up, z_low = PAM50_BODY_Z_MM[upper], PAM50_BODY_Z_MM[lower]
        for name in wanted:
            z = PAM50_BODY_Z_MM.get(name)
            if name in known or z is None or not z_low < z < z_up:
                continue
            fraction = (z_up - z) / (z_up - z_low)
            filled[name] = _place(np.asarray(known[upper], float), np.asarray(known[lower], float), fraction, centreline)
    return filled
