"""Cord morphometry along the cord and per segment: anterior-posterior (AP) diameter,
cross-sectional area (CSA) and the maximum spinal cord compression (MSCC).

MSCC follows Spinal Cord Toolbox's `sct_compute_compression` (after Miyanji et al., Radiology
2007): MSCC = (1 − d_i / ((d_above + d_below) / 2)) × 100, with d_i the AP diameter at the
compression site and d_above / d_below the mean AP diameter over `extent_mm` of cord starting
`distance_mm` above and below the site (SCT's defaults: 10 mm and 20 mm). Here every segment
C2-C3 … C7-T1 is scored, its site being its narrowest point, so "the compression at C4-C5" is
read next to that segment's T2 score; on a healthy cord MSCC stays near zero (docs/SEGMENTATION.md
gives the spread measured on the real cords).

Measurement is done on the mask in the canonical frame (volume/orientation.py), one axial-ish
cross-section per S-I row, corrected for the cord's tilt with the smoothed centreline: a tube
tilted by θ cuts a row in an ellipse whose AP length is d / cos θ and whose area is A / cos θ.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .config import SEGMENTS
from .volume.orientation import to_canonical

DISTANCE_MM = 10.0  # SCT -distance
EXTENT_MM = 20.0  # SCT -extent
CENTRE_BAND_MM = 1.0  # the AP diameter is the mean AP length of the cord's columns within this of its LR centre
SMOOTH_MM = 4.0  # centreline smoothing (sigma), for the tilt
END_ROWS_MM = 2.0  # rows this close to the ends of the mask are cut ends, not cross-sections
# The AP and CSA profiles are smoothed along the cord (Gaussian sigma): a 1-voxel step of a 7 mm
# cord is 14 %, and the narrowest of many unsmoothed rows would turn that noise into "compression".
PROFILE_SIGMA_MM = 1.5


@dataclass(frozen=True)
class CordProfile:
    """One sample per canonical S-I row holding cord, top first."""

    row: np.ndarray  # canonical S-I row index
    position_mm: np.ndarray  # along the smoothed centreline from the first sample
    ap_mm: np.ndarray  # AP diameter, tilt-corrected
    csa_mm2: np.ndarray  # cross-sectional area, tilt-corrected
    row_spacing_mm: float

    def at_rows(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """`values` (one per sample) interpolated at canonical rows; NaN outside the profile."""
        rows = np.asarray(rows, float)
        out = np.interp(rows, self.row, values)
        out[(rows < self.row[0]) | (rows > self.row[-1])] = np.nan
        return out


@dataclass(frozen=True)
class SegmentMorphometry:
    name: str
    known: bool
    min_ap_mm: Optional[float] = None
    csa_mm2: Optional[float] = None  # at the narrowest point
    mscc: Optional[float] = None  # percent
    ap_above_mm: Optional[float] = None
    ap_below_mm: Optional[float] = None
    site_row: Optional[float] = None  # canonical S-I row of the narrowest point

    def to_json(self) -> dict:
        r = lambda v, n=2: None if v is None else round(float(v), n)  # noqa: E731
        return {"mscc": r(self.mscc, 1), "min_ap_mm": r(self.min_ap_mm), "csa_mm2": r(self.csa_mm2, 1),
                "ap_above_mm": r(self.ap_above_mm), "ap_below_mm": r(self.ap_below_mm)}


@dataclass(frozen=True)
class Morphometry:
    profile: CordProfile
    segments: list[SegmentMorphometry]

    def by_name(self) -> dict[str, SegmentMorphometry]:
        return {s.name: s for s in self.segments}


def cord_profile(cord: sitk.Image) -> CordProfile:
    """AP diameter and CSA per canonical S-I row of a cord mask (any orientation and spacing)."""
    can = to_canonical(cord)
    m = sitk.GetArrayFromImage(can) > 0  # (LR, SI, AP)
    s_ap, s_si, s_lr = can.GetSpacing()
    rows = np.flatnonzero(m.any(axis=(0, 2)))
    if rows.size < 3:
        raise ValueError("the cord mask spans fewer than 3 rows; no profile can be measured")
    lr_idx, ap_idx = np.arange(m.shape[0], dtype=float), np.arange(m.shape[2], dtype=float)
    sec = m[:, rows, :]  # (LR, n, AP)
    count = sec.sum(axis=(0, 2)).astype(float)
    lr_c = (sec.sum(axis=2) * lr_idx[:, None]).sum(axis=0) / count * s_lr
    ap_c = (sec.sum(axis=0) * ap_idx[None, :]).sum(axis=1) / count * s_ap
    si = rows * s_si
    sigma = SMOOTH_MM / s_si
    lr_s, ap_s = ndi.gaussian_filter1d(lr_c, sigma, mode="nearest"), ndi.gaussian_filter1d(ap_c, sigma, mode="nearest")
    d_lr, d_ap = np.gradient(lr_s, si), np.gradient(ap_s, si)
    cos_tilt = 1.0 / np.sqrt(1.0 + d_lr**2 + d_ap**2)
    cos_ap = 1.0 / np.sqrt(1.0 + d_ap**2)
    # AP length of each LR column, averaged over the columns near the cord's LR centre.
    col_len = sec.sum(axis=2) * s_ap  # (LR, n)
    near = np.abs(lr_idx[:, None] * s_lr - lr_c[None, :]) <= max(CENTRE_BAND_MM, s_lr / 2)
    ap_len = np.where(near, col_len, 0).sum(axis=0) / np.maximum(near.sum(axis=0), 1)
    ap = ndi.gaussian_filter1d(ap_len * cos_ap, PROFILE_SIGMA_MM / s_si, mode="nearest")
    csa = ndi.gaussian_filter1d(count * s_lr * s_ap * cos_tilt, PROFILE_SIGMA_MM / s_si, mode="nearest")
    pos = np.concatenate([[0.0], np.cumsum(np.sqrt(np.diff(si) ** 2 + np.diff(lr_s) ** 2 + np.diff(ap_s) ** 2))])
    return CordProfile(rows.astype(float), pos, ap, csa, float(s_si))


def _window_mean(profile: CordProfile, valid: np.ndarray, lo_mm: float, hi_mm: float) -> Optional[float]:
    sel = valid & (profile.position_mm >= lo_mm) & (profile.position_mm <= hi_mm)
    # Half the window at least: fewer samples would be the cut end of the mask, not a level.
    if sel.sum() * profile.row_spacing_mm < 0.5 * (hi_mm - lo_mm):
        return None
    return float(np.mean(profile.ap_mm[sel]))


def segment_morphometry(profile: CordProfile, body_rows: dict[str, float], *, distance_mm: float = DISTANCE_MM,
                        extent_mm: float = EXTENT_MM) -> list[SegmentMorphometry]:
    """Per segment (config.SEGMENTS): narrowest AP diameter between the two body centres (their
    canonical S-I rows in `body_rows`), the CSA there, and MSCC against the cord `distance_mm`
    to `distance_mm + extent_mm` above and below. With one side beyond the mask's ends, MSCC uses
    the other side alone; with neither, it is None."""
    end = END_ROWS_MM
    valid = (profile.position_mm >= end) & (profile.position_mm <= profile.position_mm[-1] - end)
    out = []
    for name in SEGMENTS:
        upper, lower = name.split("-")
        if upper not in body_rows or lower not in body_rows:
            out.append(SegmentMorphometry(name, False))
            continue
        lo, hi = sorted((body_rows[upper], body_rows[lower]))
        sel = valid & (profile.row >= lo) & (profile.row < hi)
        if not sel.any():
            out.append(SegmentMorphometry(name, True))
            continue
        k = np.flatnonzero(sel)[int(np.argmin(profile.ap_mm[sel]))]
        site = profile.position_mm[k]
        above = _window_mean(profile, valid, site - distance_mm - extent_mm, site - distance_mm)
        below = _window_mean(profile, valid, site + distance_mm, site + distance_mm + extent_mm)
        refs = [d for d in (above, below) if d is not None]
        mscc = (1.0 - profile.ap_mm[k] / float(np.mean(refs))) * 100.0 if refs else None
        out.append(SegmentMorphometry(name, True, float(profile.ap_mm[k]), float(profile.csa_mm2[k]), mscc, above, below, float(profile.row[k])))
    return out


def body_rows(levels, cord: sitk.Image) -> dict[str, float]:
    """Canonical S-I row (continuous) of each known vertebral-body centre."""
    can = to_canonical(cord)
    return {name: float(can.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in p))[1]) for name, p in levels.bodies.items()}


def cord_morphometry(cord: sitk.Image, levels=None) -> Morphometry:
    """The profile along the cord and, with levels, the per-segment figures (else all unknown)."""
    profile = cord_profile(cord)
    rows = body_rows(levels, cord) if levels is not None else {}
    return Morphometry(profile, segment_morphometry(profile, rows))


def profile_csv(profile: CordProfile) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["position_mm", "ap_mm", "csa_mm2"])
    for p, a, c in zip(profile.position_mm, profile.ap_mm, profile.csa_mm2):
        w.writerow([f"{p:.2f}", f"{a:.3f}", f"{c:.2f}"])
    return buf.getvalue()
