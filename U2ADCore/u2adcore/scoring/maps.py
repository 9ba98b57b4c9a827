"""Per-pixel anomaly map and its post-processing (METHOD.md §6), pure functions over 2D arrays.

Anomaly values are only meaningful inside the cord: the eroded ROI drops the boundary pixels,
where partial-volume CSF makes every reconstruction error large whether or not there is a lesion.

Two maps: the paper's |x - mu| (`anomaly_map`, then `postprocess`), and the default normative
residual (`normative_map`): the hyperintense part of x - mu above the slice's median residual in
the cord, in units of a spread expected on healthy cords. The median removes the per-study offset
of mu that |x - mu| turns into a floor over the whole cord (docs/DETECTION.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

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


def depth_into(roi: np.ndarray, max_depth: int) -> np.ndarray:
    """Pixels from the edge of `roi` (1 = on its edge, 4-connected steps), capped at `max_depth`; 0 outside."""
    depth = ndimage.distance_transform_cdt(np.asarray(roi, dtype=bool), metric="taxicab")
    return np.minimum(depth, max_depth).astype(np.int32)


def normative_map(
    residual: np.ndarray,
    roi: np.ndarray,
    erode_px: int,
    scale: str = "healthy",
    spread: Optional[Sequence[float]] = None,
) -> np.ndarray:
    """max(r - median_cord(r), 0) / s inside the eroded cord, 0 elsewhere, for a signed residual r = x - mu.

    s: "none" 1; "slice_mad" the slice's median absolute deviation of r in the cord; "healthy"
    `spread[d - 1]` at depth d into the eroded cord (the last value for every deeper pixel): the
    median |r - median| of healthy cords at that depth, measured at calibration. The edge of a
    cord, where partial volume and a too-wide mask live, is noisier than its core. Without a
    stored spread "healthy" leaves values unscaled, so an uncalibrated model still gives a map.
    """
    residual = np.asarray(residual, dtype=np.float64)
    if residual.shape != np.shape(roi):
        raise ValueError(f"residual map {residual.shape} and ROI {np.shape(roi)} differ in shape")
    roi_a = analysis_roi(roi, erode_px)
    out = np.zeros(residual.shape, dtype=np.float32)
    if not roi_a.any():
        return out
    centred = residual[roi_a] - np.median(residual[roi_a])
    if scale == "slice_mad":
        divisor = np.float64(np.median(np.abs(centred)))
    elif scale == "healthy" and spread:
        values = np.asarray(spread, dtype=np.float64)
        divisor = values[depth_into(roi_a, len(values))[roi_a] - 1]
    elif scale in ("healthy", "none"):
        divisor = np.float64(1.0)
    else:
        raise ValueError(f"unknown residual scale {scale!r} (none | slice_mad | healthy)")
    out[roi_a] = np.maximum(centred, 0.0) / np.maximum(divisor, 1e-6)
    return out


def healthy_spread(residuals: Sequence[np.ndarray], rois: Sequence[np.ndarray], erode_px: int, max_depth: int) -> list[float]:
    """The "healthy" scale of `normative_map` from healthy slices: per depth 1..max_depth into the
    eroded cord, the median |r - median_cord(r)| over all of them."""
    by_depth: list[list[np.ndarray]] = [[] for _ in range(max_depth)]
    for residual, roi in zip(residuals, rois):
        roi_a = analysis_roi(roi, erode_px)
        if not roi_a.any():
            continue
        r = np.asarray(residual, dtype=np.float64)
        centred = np.abs(r - np.median(r[roi_a]))
        depth = depth_into(roi_a, max_depth)
        for d in range(1, max_depth + 1):
            by_depth[d - 1].append(centred[depth == d])
    spread = []
    for d, chunks in enumerate(by_depth):
        values = np.concatenate(chunks) if chunks else np.zeros(0)
        # a depth no healthy cord reaches takes the spread of the one above it
        spread.append(float(np.median(values)) if values.size else (spread[-1] if spread else 1.0))
    return spread


def threshold_candidates(amap: np.ndarray, roi: np.ndarray, pixel_threshold: float, min_pixels: int, top_k: int) -> np.ndarray:
    """Candidates where something is: 8-connected components of `amap` > `pixel_threshold` inside
    `roi` with at least `min_pixels` pixels, the `top_k` by summed value (labels 1..k, 1 the highest)."""
    roi = np.asarray(roi, dtype=bool)
    return top_components(roi & (amap > pixel_threshold), amap, k=top_k, min_size=max(int(min_pixels), 1))


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
