"""Pseudo-anomalies: synthetic T2 hyperintensities pasted into real healthy studies.

METHOD.md §8 (paper Appendix A.1): elliptical lesions inside the cord, width U(0.7, 1.0) x the
local cord width, length U(1, 4) x that width, 1-3 per slice, with Gaussian signal whose mean
and spread are drawn between the cord's and the CSF's. They give a detector a known answer on
real anatomy, which the generated phantoms cannot.

Lesions go into sagittal slices of the canonical frame (ARCHITECTURE.md), the mid-sagittal slice
and optionally its neighbours, each slice independently: the detectors read 2D slices.
`PseudoAnomalyConfig.placement = "edge"` puts narrower lesions against the cord's anterior or
posterior surface instead of on its centreline (not in the paper: a dorsal-column lesion).
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
    """A study with pseudo-lesions and its ground truth at every level the evaluation scores."""

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
    """Cord and CSF signal statistics in one slice.

    CSF is the part of the band around the cord that is brighter than the cord's mean: at 1-3 mm
    the band also crosses dura, bone and epidural fat, whose partial volume would otherwise drag
    the CSF mean toward the cord and inflate its spread. A band with no such pixel cannot host a
    T2 hyperintensity.
    """
    cord_values = image[cord]
    band = image[csf_band(cord, spacing_rc, band_mm)]
    csf = band[band > cord_values.mean()]
    if csf.size == 0:
        raise InputError(
            where,
            f"no pixel of the band {band_mm[0]:g}-{band_mm[1]:g} mm around the cord is brighter than the cord "
            f"(mean {cord_values.mean():.1f}); pseudo-lesions need a T2-weighted image with a cord mask",
        )
    return _SliceStats(float(cord_values.mean()), float(cord_values.std()), float(csf.mean()), float(csf.std()))


def _smooth_gaussian(shape, spacing_rc, correlation_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian field; `correlation_mm` > 0 smooths it so a lesion has tissue-like
    texture instead of salt-and-pepper, without changing its per-pixel distribution."""
    field = rng.standard_normal(shape)
    if correlation_mm > 0:
        field = ndi.gaussian_filter(field, (correlation_mm / spacing_rc[0], correlation_mm / spacing_rc[1]))
    return field / field.std()


def cord_axis(cord: np.ndarray, spacing_rc) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows holding cord and, per such row, the centre column (px), the cord's slope (mm of
    column per mm of row) and its width perpendicular to its direction (mm)."""
    rows = np.flatnonzero(cord.any(axis=1))
    cols = np.arange(cord.shape[1])
    count = cord[rows].sum(axis=1)
    centre = (cord[rows] * cols).sum(axis=1) / count
    smooth = ndi.uniform_filter1d(centre, size=min(9, len(rows)), mode="nearest")
    slope = np.gradient(smooth, rows) * spacing_rc[1] / spacing_rc[0] if len(rows) > 1 else np.zeros(1)
    width = count * spacing_rc[1] / np.hypot(1.0, slope)
    return rows, centre, slope, width


def _ellipse(shape, spacing_rc, centre_rc, slope: float, length: float, width: float) -> np.ndarray:
    """An ellipse with its long axis along the cord's direction (row mm + slope col mm)."""
    dr = (np.arange(shape[0])[:, None] - centre_rc[0]) * spacing_rc[0]
    dc = (np.arange(shape[1])[None, :] - centre_rc[1]) * spacing_rc[1]
    norm = np.hypot(1.0, slope)
    u, v = (dr + dc * slope) / norm, (dc - dr * slope) / norm
    return (u / (length / 2.0)) ** 2 + (v / (width / 2.0)) ** 2 <= 1.0


def _between(lo: float, hi: float, rng: np.random.Generator) -> float:
    return float(rng.uniform(min(lo, hi), max(lo, hi)))


def _insert_in_slice(image, cord, spacing_rc, stats: _SliceStats, n: int, cfg: PseudoAnomalyConfig, rng, row_ok: np.ndarray):
    """Paint `n` lesions into one slice (in place), centred on rows where `row_ok`; returns [(mask, width, length, mean, std)]."""
    rows, centre, slope, width = cord_axis(cord, spacing_rc)
    candidates = np.flatnonzero(row_ok[rows])
    if candidates.size == 0:
        candidates = np.arange(len(rows))
    out = []
    edge = cfg.placement == "edge"
    if cfg.placement not in ("centre", "edge"):
        raise ValueError(f"unknown lesion placement {cfg.placement!r} (centre | edge)")
    for _ in range(n):
        k = int(rng.choice(candidates))
        w = float(rng.uniform(*(cfg.edge_width_fraction if edge else cfg.width_fraction))) * float(width[k])
        length = float(rng.uniform(*cfg.length_factor)) * w
        in_row = np.flatnonzero(cord[rows[k]])
        if edge:  # the lesion's side touches the cord's anterior or posterior surface in this row
            side = 1 if rng.random() < 0.5 else -1
            surface = in_row.max() if side > 0 else in_row.min()
            col = float(surface) - side * min(0.5 * w / spacing_rc[1], 0.5 * (in_row.max() - in_row.min()))
        else:
            col = float(in_row[np.argmin(np.abs(in_row - centre[k]))])  # a cord pixel, so the lesion is never empty
        mask = _ellipse(cord.shape, spacing_rc, (rows[k], col), float(slope[k]), length, w) & cord
        if edge and not mask.any():  # narrower than a pixel: the surface pixel itself
            mask[rows[k], surface] = True
        mean = _between(stats.cord_mean, stats.csf_mean, rng)
        std = _between(stats.cord_std, stats.csf_std, rng)
        field = _smooth_gaussian(cord.shape, spacing_rc, cfg.texture_mm, rng)
        image[mask] = np.maximum(mean + std * field[mask], 0.0)
        out.append((mask, w, length, mean, std))
    return out


def _rows_in_scored_levels(study: Study, canon_img: sitk.Image, cord_slice: np.ndarray, i: int, cfg: PseudoAnomalyConfig) -> np.ndarray:
    """Per canonical row: may a lesion be centred here? Between the upper body centre of the first
    and the lower body centre of the last segment (C2-C3 … C7-T1) the levels can place (S-I, at the
    cord's column), so every lesion lands in a scored segment; anywhere without placeable levels."""
    n_rows = cord_slice.shape[0]
    spans = [] if study.levels is None else [p for p in map(study.levels.segment_points, SEGMENTS) if p is not None]
    if not cfg.within_levels or not spans:
        return np.ones(n_rows, bool)
    top, bottom = max(float(p[0][2]) for p in spans), min(float(p[1][2]) for p in spans)
    col = float(np.argwhere(cord_slice)[:, 1].mean())
    z = np.array([canon_img.TransformContinuousIndexToPhysicalPoint((col, float(r), float(i)))[2] for r in range(n_rows)])
    return (z <= top) & (z >= bottom)


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
    `cfg.n_neighbours` slices either side that contain cord. With levels, lesion centres stay
    between the C2 and T1 body centres (`cfg.within_levels`). A lesion mask already on the
    study is kept (united with the new one).
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
        row_ok = _rows_in_scored_levels(study, canon_img, cord[i], i, cfg)
        n = int(rng.integers(lo, hi + 1))
        for mask, w, length, mean, std in _insert_in_slice(image[i], cord[i], spacing_rc, stats, n, cfg, rng, row_ok):
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
