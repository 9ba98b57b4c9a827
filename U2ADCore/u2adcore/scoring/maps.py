"""Per-pixel anomaly map and its post-processing (METHOD.md §6), pure functions over 2D arrays.

The error |x - mu| is only meaningful inside the cord: the eroded ROI drops the boundary pixels,
where partial-volume CSF makes every reconstruction error large whether or not there is a lesion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .components import top_components

_CROSS = ndimage.generate_binary_structure(2, 1)


def analysis_roi(roi: np.ndarray, erode_px: int) -> np.ndarray:
    """The cord eroded by `erode_px` pixels (4-connected), where anomaly values are defined.

    A cord thinner than 2 * erode_px + 1 pixels would vanish entirely; the un-eroded cord is
    returned then, because an empty ROI would hide a real lesion rather than a boundary artefact.
    """
    roi = np.asarray(roi, dtype=bool)
    if erode_px <= 0:
        return roi.copy()
    eroded = ndimage.binary_erosion(roi, structure=_CROSS, iterations=erode_px)
    return eroded if eroded.any() else roi.copy()


def anomaly_map(error: np.ndarray, roi: np.ndarray, erode_px: int) -> np.ndarray:
    """|x - mu| (already computed by the method as `error`) kept inside the eroded cord, 0 elsewhere."""
    error = np.asarray(error, dtype=np.float32)
    if error.shape != np.shape(roi):
        raise ValueError(f"error map {error.shape} and ROI {np.shape(roi)} differ in shape")
    return np.where(analysis_roi(roi, erode_px), np.abs(error), np.float32(0)).astype(np.float32)


def zero_bottom_fraction(amap: np.ndarray, roi: np.ndarray, fraction: float) -> np.ndarray:
    """Zero exactly round(fraction * n) of the n ROI values, the lowest ones (ties broken by position).

    Rank-based rather than a percentile threshold so that ties (e.g. many zeros) cannot zero more
    or fewer pixels than asked.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"bottom fraction must be in [0, 1), got {fraction}")
    roi = np.asarray(roi, dtype=bool)
    out = np.where(roi, amap, 0).astype(np.float32)
    flat_idx = np.flatnonzero(roi)
    n_zero = int(round(fraction * flat_idx.size))
    lowest = flat_idx[np.argsort(out.ravel()[flat_idx], kind="stable")[:n_zero]]
    out.flat[lowest] = 0.0
    return out


@dataclass(frozen=True)
class PostProcessed:
    """The post-processed map (values only inside the kept components) and their labels 1..k."""

    amap: np.ndarray  # float32
    labels: np.ndarray  # int32, 1 = highest summed error


def postprocess(amap: np.ndarray, roi: np.ndarray, bottom_fraction: float, top_k: int) -> PostProcessed:
    """METHOD.md §6: zero the lowest `bottom_fraction` of ROI values, keep the `top_k` 8-connected
    components ranked by summed error."""
    kept = zero_bottom_fraction(amap, roi, bottom_fraction)
    labels = top_components(kept > 0, kept, k=top_k)
    return PostProcessed(amap=np.where(labels > 0, kept, np.float32(0)).astype(np.float32), labels=labels)
