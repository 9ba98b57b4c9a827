"""The segmentation network's working grid: the canonical frame (volume/orientation.py) resampled
to isotropic `spacing_mm`, intensities scaled to [0, 1] by foreground percentiles.

Any orientation and spacing comes in; the network always sees sagittal slices (rows S→I,
columns A→P) at the spacing it was trained at, and its probability map goes back onto the input
image's own grid with one linear resampling, so the mask is on the input grid whatever the input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..volume.orientation import to_canonical
from ..volume.preprocess import intensity_range


@dataclass
class WorkingVolume:
    """A volume on the working grid: `array` (LR, SI, AP) in [0, 1] and the grid as an image."""

    array: np.ndarray  # float32 (LR, SI, AP)
    grid: sitk.Image  # geometry of `array` (canonical directions, isotropic spacing)


def working_grid(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty image on the canonical frame of `image`, isotropic `spacing_mm`, same field of view."""
    can = to_canonical(image)
    size = [max(1, int(round(n * s / spacing_mm))) for n, s in zip(can.GetSize(), can.GetSpacing())]
    # Centre the new lattice on the old field of view: first sample half a new voxel from its edge.
    origin_idx = [(-0.5 + 0.5 * spacing_mm / s) for s in can.GetSpacing()]
    origin = can.TransformContinuousIndexToPhysicalPoint(origin_idx)
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing((spacing_mm,) * 3)
    grid.SetDirection(can.GetDirection())
    grid.SetOrigin(origin)
    return grid


def resample_onto(image: sitk.Image, reference: sitk.Image, interpolation: int = sitk.sitkLinear, pixel=sitk.sitkFloat32) -> sitk.Image:
    return sitk.Resample(sitk.Cast(image, pixel), reference, sitk.Transform(), interpolation, 0.0, pixel)


def to_working(image: sitk.Image, spacing_mm: float, percentiles: tuple[float, float]) -> WorkingVolume:
    """`image` on its working grid, intensities clipped at foreground percentiles and scaled to [0, 1]."""
    grid = working_grid(image, spacing_mm)
    arr = sitk.GetArrayFromImage(resample_onto(image, grid))  # (z=LR, y=SI, x=AP)
    lo, hi = intensity_range(arr.ravel(), percentiles)
    return WorkingVolume(((np.clip(arr, lo, hi) - lo) / (hi - lo)).astype(np.float32), grid)


def mask_to_working(mask: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """A 0/1 mask on the working grid (linear then 0.5: the partial-volume centre, not nearest)."""
    return sitk.GetArrayFromImage(resample_onto(mask, grid)) >= 0.5


def neighbours(volume: np.ndarray, i: int, offset: int = 1) -> np.ndarray:
    """Sagittal slices (i - offset, i, i + offset) as channels (2.5D input), edges repeated."""
    n = volume.shape[0]
    idx = [min(max(j, 0), n - 1) for j in (i - offset, i, i + offset)]
    return volume[idx]
