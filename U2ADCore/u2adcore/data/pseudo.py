"""Pseudo-anomalies: synthetic T2 hyperintensities pasted into real healthy studies.

METHOD.md §8 (paper Appendix A.1): elliptical lesions inside the cord, width U(0.7, 1.0) x the
local cord width, length U(1, 4) x that width, 1-3 per slice, with Gaussian signal whose mean
and spread are drawn between the cord's and the CSF's. They give a detector a known answer on
real anatomy, which the generated phantoms cannot.

Lesions go into sagittal slices of the canonical frame (ARCHITECTURE.md), the mid-sagittal slice
and optionally its neighbours, each slice independently: the detectors read 2D slices.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..config import SEGMENTS, PseudoAnomalyConfig
from ..errors import InputError
from ..io.study import Study
from ..volume.orientation import from_canonical, to_canonical
from ..volume.slices import mid_sagittal_index


@dataclass(frozen=True)
class PseudoLesion:
    """One inserted lesion: where (canonical slice, LPS centroid), how big and which signal."""

    slice_index: int  # canonical left-right index
    centroid: np.ndarray  # LPS mm, centroid of the lesion mask
    width_mm: float
    length_mm: float
    mean: float
    std: float
    n_voxels: int


@dataclass
class PseudoAnomaly:
    study: Study  # a new Study: image with the lesions, lesion mask on the image grid
    patient_label: int
    segment_labels: dict[str, int]  # segments whose body centres the levels know; {} without levels
    lesions: tuple[PseudoLesion, ...]


@dataclass(frozen=True)
class _SliceStats:
    """Signal of the cord and of the CSF band around it in one slice."""

    cord_mean: float
    cord_std: float
    csf_mean: float
    csf_std: float


def csf_band(cord: np.ndarray, spacing_rc: tuple[float, float], band_mm: tuple[float, float]) -> np.ndarray:
    """Pixels between band_mm[0] and band_mm[1] mm outside a 2D cord mask (exact, anisotropic)."""
    dist = ndi.distance_transform_edt(~cord, sampling=spacing_rc)
    return (dist > band_mm[0]) & (dist <= band_mm[1])


def slice_stats(image: np.ndarray, cord: np.ndarray, spacing_rc, band_mm, where: str) -> _SliceStats:
    """Cord and CSF statistics; a CSF band no brighter than the cord cannot host a T2 hyperintensity."""
    band = csf_band(cord, spacing_rc, band_mm)
    stats = _SliceStats(float(image[cord].mean()), float(image[cord].std()), float(image[band].mean()), float(image[band].std()))
    if stats.csf_mean <= stats.cord_mean:
        raise InputError(
            where,
            f"the CSF band {band_mm[0]:g}-{band_mm[1]:g} mm around the cord (mean {stats.csf_mean:.1f}) is not brighter "
            f"than the cord (mean {stats.cord_mean:.1f}); pseudo-lesions need a T2-weighted image with a cord mask",
        )
    return stats


def cord_axis(cord: np.ndarray, spacing_rc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: centre column (px), slope of the cord (mm of column per mm of row), perpendicular width (mm)."""
    rows = np.flatnonzero(cord.any(axis=1))
    cols = np.arange(cord.shape[1])
    count = cord[rows].sum(axis=1)
    centre = (cord[rows] * cols).sum(axis=1) / count
    smooth = ndi.uniform_filter1d(centre, size=min(9, len(rows)), mode="nearest")
    slope = np.gradient(smooth, rows) * spacing_rc[1] / spacing_rc[0] if len(rows) > 1 else np.zeros(1)
    width = count * spacing_rc[1] / np.hypot(1.0, slope)
    return rows, np.stack([centre, slope]), width


def _ellipse(shape, spacing_rc, centre_rc, slope: float, length: float, width: float) -> np.ndarray:
    """An ellipse with its long axis along the cord's direction (row mm + slope col mm)."""
    dr = (np.arange(shape[0])[:, None] - centre_rc[0]) * spacing_rc[0]
    dc = (np.arange(shape[1])[None, :] - centre_rc[1]) * spacing_rc[1]
    norm = np.hypot(1.0, slope)
    u, v = (dr + dc * slope) / norm, (dc - dr * slope) / norm
    return (u / (length / 2.0)) ** 2 + (v / (width / 2.0)) ** 2 <= 1.0


def _between(lo: float, hi: float, rng: np.random.Generator) -> float:
    return float(rng.uniform(min(lo, hi), max(lo, hi)))


def _insert_in_slice(image, cord, spacing_rc, stats: _SliceStats, n: int, cfg: PseudoAnomalyConfig, rng):
    """Paint `n` lesions into one slice (in place); returns [(mask, width, length, mean, std)]."""
    rows, (centre, slope), width = cord_axis(cord, spacing_rc)
    out = []
    for _ in range(n):
        k = int(rng.integers(len(rows)))
        w = float(rng.uniform(*cfg.width_fraction)) * float(width[k])
        length = float(rng.uniform(*cfg.length_factor)) * w
        mask = _ellipse(cord.shape, spacing_rc, (rows[k], centre[k]), float(slope[k]), length, w) & cord
        mean = _between(stats.cord_mean, stats.csf_mean, rng)
        std = _between(stats.cord_std, stats.csf_std, rng)
        image[mask] = np.maximum(rng.normal(mean, std, int(mask.sum())), 0.0)
        out.append((mask, w, length, mean, std))
    return out


def _segment_labels(study: Study, centroids: Sequence[np.ndarray]) -> dict[str, int]:
    """Segment positive when a lesion centroid lies between its two body centres along S-I (LPS z)."""
    if study.levels is None:
        return {}
    labels = {}
    for seg in SEGMENTS:
        points = study.levels.segment_points(seg)
        if points is None:
            continue
        lo, hi = sorted((float(points[0][2]), float(points[1][2])))
        labels[seg] = int(any(lo <= c[2] <= hi for c in centroids))
    return labels


def insert_pseudo_lesions(
    study: Study,
    rng: np.random.Generator,
    n_lesions: tuple[int, int] = (1, 3),
    slices: Optional[Sequence[int]] = None,
    cfg: Optional[PseudoAnomalyConfig] = None,
) -> PseudoAnomaly:
    """A copy of `study` with n_lesions[0]..n_lesions[1] pseudo-lesions per slice; the input is untouched.

    `slices` are canonical left-right indices; by default the mid-sagittal slice and
    `cfg.n_neighbours` slices either side that contain cord. A lesion mask already on the study
    is kept (united with the new one).
    """
    cfg = cfg or PseudoAnomalyConfig()
    where = str(study.image_path) if study.image_path is not None else study.id
    lo, hi = n_lesions
    if not 1 <= lo <= hi:
        raise InputError(where, f"n_lesions must be a range (min, max) with 1 <= min <= max, got {n_lesions}")
    canon_img = to_canonical(study.image)
    image = sitk.GetArrayFromImage(canon_img).astype(np.float32)  # a copy: the study is never written to
    cord = sitk.GetArrayFromImage(to_canonical(study.cord)) > 0
    lesion = np.zeros(cord.shape, np.uint8) if study.lesion is None else sitk.GetArrayFromImage(to_canonical(study.lesion))
    if slices is None:
        mid = mid_sagittal_index(cord)
        slices = [i for i in range(mid - cfg.n_neighbours, mid + cfg.n_neighbours + 1) if 0 <= i < cord.shape[0] and cord[i].any()]
    spacing_rc = (canon_img.GetSpacing()[1], canon_img.GetSpacing()[0])
    found = []
    for i in slices:
        if not (0 <= i < cord.shape[0]) or not cord[i].any():
            raise InputError(where, f"sagittal slice {i} holds no cord (slices with cord: {np.flatnonzero(cord.any(axis=(1, 2))).tolist()})")
        stats = slice_stats(image[i], cord[i], spacing_rc, cfg.csf_ring_mm, where)
        for mask, w, length, mean, std in _insert_in_slice(image[i], cord[i], spacing_rc, stats, int(rng.integers(lo, hi + 1)), cfg, rng):
            lesion[i][mask] = 1
            r, c = np.argwhere(mask).mean(axis=0)
            centroid = np.array(canon_img.TransformContinuousIndexToPhysicalPoint((float(c), float(r), float(i))))
            found.append(PseudoLesion(i, centroid, w, length, mean, std, int(mask.sum())))

    def back(arr: np.ndarray) -> sitk.Image:
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(canon_img)
        return from_canonical(out, study.image)

    new_study = dataclasses.replace(study, image=back(image), lesion=back(lesion))
    return PseudoAnomaly(
        study=new_study,
        patient_label=1,
        segment_labels=_segment_labels(study, [les.centroid for les in found]),
        lesions=tuple(found),
    )
