"""Agreement of two masks on one grid: Dice and the symmetric mean surface distance (mm)."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def _surface(m: np.ndarray) -> np.ndarray:
    return m & ~ndi.binary_erosion(m, border_value=0)


def mean_surface_distance(a: np.ndarray, b: np.ndarray, spacing_zyx) -> float:
    """Mean over both surfaces of the distance (mm) from each surface voxel to the other surface."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not a.any() or not b.any():
        return float("inf")
    sa, sb = _surface(a), _surface(b)
    da = ndi.distance_transform_edt(~sb, sampling=spacing_zyx)[sa]
    db = ndi.distance_transform_edt(~sa, sampling=spacing_zyx)[sb]
    return float(np.concatenate([da, db]).mean())


def compare(pred: sitk.Image, ref: sitk.Image) -> dict:
    """{"dice", "msd_mm", "volume_ratio"} of `pred` against `ref` (same grid)."""
    p = sitk.GetArrayViewFromImage(pred) > 0
    r = sitk.GetArrayViewFromImage(ref) > 0
    spacing = tuple(reversed(ref.GetSpacing()))
    return {"dice": dice(p, r), "msd_mm": mean_surface_distance(p, r, spacing), "volume_ratio": float(p.sum()) / max(int(r.sum()), 1)}
