"""Per-pixel anomaly map and its post-processing (METHOD.md §6), pure functions over 2D arrays.

Anomaly values are only meaningful inside the cord: the eroded ROI drops the boundary pixels,
where partial-volume CSF makes every reconstruction error large whether or not there is a lesion.

Two maps: the paper's |x - mu| (`anomaly_map`, then `postprocess`), and the default normative
residual (`normative_map`): the hyperintense part of x - mu above its typical value (the slice's
median, or a running median along the cord per depth and side), in units of a spread expected
on healthy cords. Centring removes the per-study offset of mu that |x - mu| turns into a floor
over the whole cord; the profile also removes the bias of the cord's rim (docs/DETECTION.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ..config import ScoringConfig
from .components import top_components

_CROSS = ndimage.generate_binary_structure(2, 1)


def analysis_roi(roi: np.ndarray, erode_px: int) -> np.ndarray:
    """The cord eroded by `erode_px` pixels (4-connected), where anomaly values are defined.

    A cord thinner than 2 * erode_px + 1 pixels would vanish entirely; it is eroded by as many
    pixels as it survives then (down to none), because an empty ROI would hide a real lesion
    rather than a boundary artefact.
    """
    roi = np.asarray(roi, dtype=bool)
    for n in range(erode_px, 0, -1):
        eroded = ndimage.binary_erosion(roi, structure=_CROSS, iterations=n)
        if eroded.any():
            return eroded
    return roi.copy()


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


PROFILE_DEPTHS = 6  # depths into the cord with their own running profile (per side up to the last)


def _running_nanmedian(values: np.ndarray, window: int) -> np.ndarray:
    """Per entry, the median of the finite values within ±window//2 entries (NaN where none)."""
    half = max(int(window) // 2, 0)
    padded = np.pad(values, half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    out = np.full(values.shape, np.nan)
    has = np.isfinite(windows).any(axis=1)
    out[has] = np.nanmedian(windows[has], axis=1)
    return out


def profile_baseline(residual: np.ndarray, roi: np.ndarray, window: int) -> np.ndarray:
    """The typical residual of each cord pixel: per depth into `roi` (1 … PROFILE_DEPTHS) and per
    side of the row's centre (anterior / posterior, the deepest depth both together), the running
    median along the cord (over `window` rows) of the rows' medians. A partial-volume rim or a mask
    a voxel too wide biases a whole ring of the cord along its length, which this removes; a
    lesion shorter than half the window does not move it."""
    roi = np.asarray(roi, dtype=bool)
    base = np.zeros(residual.shape, dtype=np.float64)
    rows = np.flatnonzero(roi.any(axis=1))
    if rows.size == 0:
        return base
    depth = depth_into(roi, PROFILE_DEPTHS)
    cols = np.arange(roi.shape[1])
    centre = (roi * cols).sum(axis=1) / np.maximum(roi.sum(axis=1), 1)
    posterior = cols[None, :] >= centre[:, None]
    groups = [(depth == d) & (posterior if side else ~posterior) for d in range(1, PROFILE_DEPTHS) for side in (0, 1)]
    for group in groups + [depth == PROFILE_DEPTHS]:
        if not group.any():
            continue
        medians = np.full(roi.shape[0], np.nan)
        for r in np.flatnonzero(group.any(axis=1)):
            medians[r] = np.median(residual[r, group[r]])
        run = _running_nanmedian(medians, window)
        yy, xx = np.nonzero(group)
        base[yy, xx] = np.where(np.isfinite(run[yy]), run[yy], np.median(residual[group]))
    return base


def centred_residual(residual: np.ndarray, roi_a: np.ndarray, centre: str, window: int) -> np.ndarray:
    """r minus its typical value inside `roi_a`: the slice's median ("slice") or the running profile
    per depth and side (`profile_baseline`, "profile")."""
    if centre == "slice":
        return residual - np.median(residual[roi_a])
    if centre == "profile":
        return residual - profile_baseline(residual, roi_a, window)
    raise ValueError(f"unknown residual centring {centre!r} (slice | profile)")


def normative_map(
    residual: np.ndarray,
    roi: np.ndarray,
    erode_px: int,
    scale: str = "healthy",
    spread: Optional[Sequence[float]] = None,
    centre: str = "slice",
    window: int = ScoringConfig.centre_window_px,
) -> np.ndarray:
    """max(r - typical(r), 0) / s inside the eroded cord, 0 elsewhere, for a signed residual r = x - mu.

    typical(r): `centred_residual` ("slice": the cord's median; "profile": a running median along
    the cord per depth and side, over `window` rows). s: "none" 1; "slice_mad" the slice's median
    absolute deviation of the centred r in the cord; "healthy" `spread[d - 1]` at depth d into the
    eroded cord (the last value for every deeper pixel): the median |centred r| of healthy cords at
    that depth, measured at calibration. The edge of a cord, where partial volume and a too-wide
    mask live, is noisier than its core. Without a stored spread "healthy" leaves values
    unscaled, so an uncalibrated model still gives a map.
    """
    residual = np.asarray(residual, dtype=np.float64)
    if residual.shape != np.shape(roi):
        raise ValueError(f"residual map {residual.shape} and ROI {np.shape(roi)} differ in shape")
    roi_a = analysis_roi(roi, erode_px)
    out = np.zeros(residual.shape, dtype=np.float32)
    if not roi_a.any():
        return out
    centred = centred_residual(residual, roi_a, centre, window)[roi_a]
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


def healthy_spread(residuals: Sequence[np.ndarray], rois: Sequence[np.ndarray], erode_px: int, max_depth: int,
                   centre: str = "slice", window: int = ScoringConfig.centre_window_px) -> list[float]:
    """The "healthy" scale of `normative_map` from healthy slices: per depth 1..max_depth into the
    eroded cord, the median |centred r| over all of them (centred as `normative_map` does)."""
    by_depth: list[list[np.ndarray]] = [[] for _ in range(max_depth)]
    for residual, roi in zip(residuals, rois):
        roi_a = analysis_roi(roi, erode_px)
        if not roi_a.any():
            continue
        centred = np.abs(centred_residual(np.asarray(residual, dtype=np.float64), roi_a, centre, window))
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
