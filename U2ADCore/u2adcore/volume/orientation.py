"""The canonical frame (ARCHITECTURE.md): `DICOMOrient(image, "PIL")`, decided by the header.

Array order means nothing across formats and scanners, so every study is brought into one
frame before anything looks at its voxels: `arr[i]` is a sagittal slice, rows run
superior→inferior, columns anterior→posterior. The move is a permutation and flips of the voxel
axes only (lossless, exactly invertible); an oblique acquisition stays oblique inside its slice
plane. A sheared affine has no such permutation, so it is refused instead of being silently
straightened.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

CANONICAL = "PIL"
# Direction cosines are stored as float32 in NIfTI; columns orthonormal to this tolerance are
# rotations, anything further off is a shear (or a scaling folded into the direction).
ORTHONORMAL_TOL = 1e-4
# Geometry that differs by less than this (mm) is the same geometry written with rounding.
GEOMETRY_TOL_MM = 1e-3


def direction_matrix(image: sitk.Image) -> np.ndarray:
    """The 3 × 3 direction cosines; column k is the physical direction of voxel axis k."""
    return np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)


def orientation_code(image: sitk.Image) -> str:
    """Three-letter code of the direction each voxel axis points toward (e.g. "PSR"; the same letters
    nibabel's `aff2axcodes` gives), the code `DICOMOrient` takes to go back to this layout."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def check_not_sheared(image: sitk.Image, path: Optional[Union[str, Path]] = None) -> None:
    """Refuse a direction matrix that is not a rotation (a reflection is fine, a shear is not)."""
    d = direction_matrix(image)
    gram = d.T @ d
    err = float(np.abs(gram - np.eye(3)).max())
    if err > ORTHONORMAL_TOL:
        raise InputError(
            path,
            f"sheared or non-orthonormal affine (direction columns deviate from orthonormal by {err:.3g}); "
            "resample the image onto an orthogonal grid first",
        )


def to_canonical(image: sitk.Image) -> sitk.Image:
    """The image in the canonical frame (a permutation/flip of voxels, no interpolation)."""
    check_not_sheared(image)
    return sitk.DICOMOrient(image, CANONICAL)


def geometry_only(image: sitk.Image) -> sitk.Image:
    """A uint8 image with `image`'s grid, for geometry computations without copying voxels."""
    out = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    out.CopyInformation(image)
    return out


def same_grid(a: sitk.Image, b: sitk.Image, tol_mm: float = GEOMETRY_TOL_MM) -> bool:
    """True when `a` and `b` have the same size and, within rounding, spacing, origin, direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol_mm)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol_mm)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=ORTHONORMAL_TOL)
    )


def from_canonical(canonical: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Undo `to_canonical`: `canonical` back onto exactly `reference`'s grid.

    The voxels are permuted back; the geometry is then copied from `reference` so that it is
    bit-identical (the permutation recomputes the origin in floating point).
    """
    out = sitk.DICOMOrient(canonical, orientation_code(reference))
    if not same_grid(out, reference):
        raise ValueError(
            "from_canonical: the image is not on the canonical grid of the reference "
            f"(size {out.GetSize()} vs {reference.GetSize()}, origin {out.GetOrigin()} vs {reference.GetOrigin()})"
        )
    out.CopyInformation(reference)
    return out
