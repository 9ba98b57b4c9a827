"""Per-slice preprocessing with an exact way back (METHOD.md §2).

Each analysed sagittal slice of the canonical volume becomes a `size × size` grid at
`spacing_mm`, centred on the cord, intensities clipped at foreground percentiles and scaled to
[0, 1]. Resampling and crop/pad are ONE resampling onto the output grid (linear for the image,
nearest for masks), so the image is interpolated once. The grid is placed on the source slice's
pixel lattice (its origin is a whole number of source pixels), so wherever the output spacing is
a multiple or a divisor of the source spacing, the grid samples fall on source pixel centres and
linear interpolation reproduces them exactly. `SliceTransform` records the placement and the
intensity range, which is all `maps_to_volume` needs to put any 2D map back on the study's grid.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..config import PreprocessConfig
from ..errors import InputError
from .orientation import from_canonical, geometry_only, to_canonical
from .slices import select_slices

if TYPE_CHECKING:
    from ..io.study import Study

log = logging.getLogger(__name__)

Interpolation = Literal["linear", "nearest"]
Extent = tuple[tuple[float, float], tuple[float, float]]  # ((first, last) row mm, (first, last) col mm)
_INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


def _interpolator(name: str) -> int:
    if name not in _INTERPOLATORS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATORS)}, got {name!r}")
    return _INTERPOLATORS[name]


@dataclass(frozen=True)
class SliceTransform:
    """Where a prepared slice came from, and how its intensities were scaled.

    Positions are in the canonical slice's own (row, col) mm frame: source pixel (i, j) sits at
    (i · row spacing, j · col spacing), grid pixel (r, c) at origin_rc + (r, c) · spacing_mm.
    """

    slice_index: int  # canonical left-right index
    origin_rc: tuple[float, float]
    spacing_mm: float
    size: int
    in_plane_spacing: tuple[float, float]  # source (row, col) spacing, mm
    slice_shape: tuple[int, int]  # source (rows, cols)
    intensity_lo: float
    intensity_hi: float

    # -- geometry -------------------------------------------------------------------------
    def _source_image(self, arr: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((self.in_plane_spacing[1], self.in_plane_spacing[0]))
        return img

    def to_grid(self, slice2d: np.ndarray, interpolation: Interpolation = "linear", fill: float = 0.0) -> np.ndarray:
        """A source slice (rows, cols) resampled onto the size × size grid; `fill` off the slice."""
        src = np.asarray(slice2d)
        if src.shape != self.slice_shape:
            raise ValueError(f"slice has shape {src.shape}, this transform expects {self.slice_shape}")
        out = sitk.Resample(
            self._source_image(src),
            (self.size, self.size),
            sitk.Transform(),
            _interpolator(interpolation),
            (self.origin_rc[1], self.origin_rc[0]),
            (self.spacing_mm, self.spacing_mm),
            (1.0, 0.0, 0.0, 1.0),
            float(fill),
        )
        return sitk.GetArrayFromImage(out)

    def to_slice(self, grid2d: np.ndarray, interpolation: Interpolation = "linear", fill: float = 0.0) -> np.ndarray:
        """The inverse of `to_grid`: a grid map back onto the source slice's pixels; `fill` off the grid."""
        grid = np.asarray(grid2d)
        if grid.shape != (self.size, self.size):
            raise ValueError(f"map has shape {grid.shape}, expected ({self.size}, {self.size})")
        img = sitk.GetImageFromArray(grid)
        img.SetSpacing((self.spacing_mm, self.spacing_mm))
        img.SetOrigin((self.origin_rc[1], self.origin_rc[0]))
        ref = self._source_image(np.zeros(self.slice_shape, dtype=np.uint8))
        out = sitk.Resample(img, ref, sitk.Transform(), _interpolator(interpolation), float(fill))
        return sitk.GetArrayFromImage(out)

    def grid_coords_of_points(self, canonical_ref: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
        """Physical LPS points (3,) or (N, 3) -> (N, 2) continuous (row, col) in the grid.

        `canonical_ref` is the study's image in the canonical frame (any pixel type). The
        points are projected along left-right onto the slice plane.
        """
        size = canonical_ref.GetSize()
        if (size[1], size[0]) != self.slice_shape:
            raise ValueError(f"canonical_ref has slice shape {(size[1], size[0])}, this transform expects {self.slice_shape}")
        pts = np.atleast_2d(np.asarray(points_lps, dtype=float))
        idx = np.array([canonical_ref.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in pts]).reshape(-1, 3)
        row_mm = idx[:, 1] * self.in_plane_spacing[0]
        col_mm = idx[:, 0] * self.in_plane_spacing[1]
        return np.stack([(row_mm - self.origin_rc[0]) / self.spacing_mm, (col_mm - self.origin_rc[1]) / self.spacing_mm], axis=1)

    # -- intensity ------------------------------------------------------------------------
    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Original units -> [0, 1] (clipped at the recorded range)."""
        lo, hi = self.intensity_lo, self.intensity_hi
        return ((np.clip(x, lo, hi) - lo) / (hi - lo)).astype(np.float32)

    def to_original_units(self, x01: np.ndarray) -> np.ndarray:
        """[0, 1] -> original units (for writing reconstructions next to the input)."""
        return (self.intensity_lo + np.asarray(x01, dtype=np.float64) * (self.intensity_hi - self.intensity_lo)).astype(np.float32)


@dataclass
class PreparedSlice:
    """One model-ready slice: rows S→I, columns A→P, `size × size` at `spacing_mm`."""

    image: np.ndarray  # float32 in [0, 1]
    roi: np.ndarray  # bool, the cord
    transform: SliceTransform
    lesion: Optional[np.ndarray] = None  # bool, when the study has a lesion mask
    study_id: str = ""


def cord_extent_mm(cord_canonical: np.ndarray, in_plane_spacing: tuple[float, float]) -> Extent:
    """(first, last) cord pixel position (mm) along rows and along columns, over all slices."""
    extents = []
    for axis, other in ((1, (0, 2)), (2, (0, 1))):
        idx = np.flatnonzero(np.any(cord_canonical, axis=other))
        extents.append((float(idx[0] * in_plane_spacing[axis - 1]), float(idx[-1] * in_plane_spacing[axis - 1])))
    return extents[0], extents[1]


def grid_origin(extent_mm: Extent, in_plane_spacing: tuple[float, float], spacing_mm: float, size: int) -> tuple[float, float]:
    """Grid origin (row, col mm) centring the grid on the cord's extent, on the source lattice.

    One origin per study (from the whole 3D cord), so neighbouring slices stay aligned with each
    other. Snapping to whole source pixels keeps grid samples on source pixel centres.
    """
    origin = []
    for (first, last), step in zip(extent_mm, in_plane_spacing):
        start_mm = (first + last) / 2.0 - (size - 1) / 2.0 * spacing_mm
        origin.append(float(np.round(start_mm / step) * step))
    return origin[0], origin[1]


def intensity_range(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Clip range from the foreground's percentiles.

    Foreground = voxels > 0: in MR magnitude images exactly-zero voxels are padding or regions
    the scanner or a crop blanked, not anatomy, and excluding them keeps a large blank margin
    from pulling the low percentile to 0. A slice with no positive voxel uses all its voxels; a
    constant slice gets a unit-wide range so it maps to 0 instead of dividing by zero.
    """
    fg = values[values > 0]
    if fg.size == 0:
        fg = values
    lo, hi = (float(v) for v in np.percentile(fg, percentiles))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


# Below this (p_hi - p_lo) / max(|p_lo|, |p_hi|) a volume or slice is refused as near-constant:
# stretched to [0, 1] it would be quantisation noise, and some maps divide by its spread. Real MR
# images sit near 1 (p99 several times p1); a blank series or a failed export at 0.
MIN_RELATIVE_CONTRAST = 1e-3


def contrast_problem(values: np.ndarray, percentiles: tuple[float, float]) -> Optional[str]:
    """Why these intensities cannot be analysed (constant or near-constant foreground, the same
    foreground `intensity_range` uses), or None when they can."""
    values = np.asarray(values)
    if values.size == 0:
        return "no voxel to analyse"
    fg = values[values > 0]
    if fg.size == 0:
        fg = values
    lo, hi = (float(v) for v in np.percentile(fg, percentiles))
    if hi <= lo:
        if float(values.min()) == float(values.max()):
            return f"it is constant (every voxel is {lo:g}): a blank series or a failed export?"
        return f"it is near-constant (percentiles {percentiles[0]:g}-{percentiles[1]:g} of its foreground are both {lo:g})"
    if hi - lo < MIN_RELATIVE_CONTRAST * max(abs(lo), abs(hi)):
        return f"it is near-constant (foreground spans only {lo:g} to {hi:g}, below {MIN_RELATIVE_CONTRAST:g} of its level)"
    return None


def _warn_if_cord_leaves_field(extent_mm: Extent, origin: tuple[float, float], cfg: PreprocessConfig, study_id: str) -> None:
    """A cord longer than the field (e.g. a whole-spine scan) keeps only its central part."""
    field_mm = cfg.size * cfg.spacing_mm
    for (first, last), start, name in zip(extent_mm, origin, ("S-I", "A-P")):
        if first < start - cfg.spacing_mm / 2 or last > start - cfg.spacing_mm / 2 + field_mm:
            log.warning("%s: the cord spans %.0f mm %s, more than the %.0f mm field; only its central part is analysed", study_id, last - first, name, field_mm)


def prepare_slices(study: "Study", cfg: PreprocessConfig) -> list[PreparedSlice]:
    """The study's selected sagittal slices, ready for a model (see module docstring)."""
    image = sitk.GetArrayFromImage(to_canonical(study.image)).astype(np.float32)
    canonical_cord = to_canonical(study.cord)
    cord = sitk.GetArrayFromImage(canonical_cord) > 0
    lesion = None if study.lesion is None else sitk.GetArrayFromImage(to_canonical(study.lesion)) > 0
    sp = canonical_cord.GetSpacing()
    in_plane = (float(sp[1]), float(sp[0]))
    extent = cord_extent_mm(cord, in_plane)
    origin = grid_origin(extent, in_plane, cfg.spacing_mm, cfg.size)
    _warn_if_cord_leaves_field(extent, origin, cfg, study.id)
    out = []
    for i in select_slices(cord, cfg.n_slices, cfg.slices):
        geometry = SliceTransform(i, origin, cfg.spacing_mm, cfg.size, in_plane, image.shape[1:], 0.0, 1.0)
        on_slice = geometry.to_grid(np.ones(image.shape[1:], np.uint8), "nearest").astype(bool)
        values = geometry.to_grid(image[i], "linear")
        problem = contrast_problem(values[on_slice], cfg.clip_percentiles)
        if problem is not None:
            raise InputError(study.image_path, f"sagittal slice {i} cannot be analysed: {problem}")
        lo, hi = intensity_range(values[on_slice], cfg.clip_percentiles)
        t = dataclasses.replace(geometry, intensity_lo=lo, intensity_hi=hi)
        out.append(
            PreparedSlice(
                image=np.where(on_slice, t.to_unit(values), 0.0).astype(np.float32),
                roi=t.to_grid(cord[i].astype(np.uint8), "nearest").astype(bool),
                transform=t,
                lesion=None if lesion is None else t.to_grid(lesion[i].astype(np.uint8), "nearest").astype(bool),
                study_id=study.id,
            )
        )
    return out


def maps_to_volume(
    maps: Sequence[np.ndarray],
    slices: Sequence[PreparedSlice],
    reference: sitk.Image,
    *,
    interpolation: Interpolation = "linear",
    fill: float = 0.0,
) -> sitk.Image:
    """2D grid maps -> float32 image on exactly `reference`'s grid (size, spacing, origin,
    direction); each map lands in its slice, `fill` everywhere else."""
    if len(maps) != len(slices):
        raise ValueError(f"{len(maps)} maps for {len(slices)} slices")
    canonical = to_canonical(geometry_only(reference))
    size = canonical.GetSize()
    vol = np.full((size[2], size[1], size[0]), fill, dtype=np.float32)
    for m, s in zip(maps, slices):
        t = s.transform
        if t.slice_shape != vol.shape[1:] or not 0 <= t.slice_index < vol.shape[0]:
            raise ValueError(f"slice {t.slice_index} of shape {t.slice_shape} does not belong to a volume of canonical shape {vol.shape}")
        vol[t.slice_index] = t.to_slice(np.asarray(m, dtype=np.float32), interpolation, fill)
    out = sitk.GetImageFromArray(vol)
    out.CopyInformation(canonical)
    return from_canonical(out, reference)
