"""Reading one 3D image from disk, with every refusal naming the file and the problem.

SimpleITK does the format work (NIfTI, NRRD, MetaImage, DICOM series); this module decides what
is acceptable input for the pipeline: one scalar 3D volume, finite voxels, an orthonormal
(possibly oblique) affine. Problems are caught here, at the door, so no later stage meets them.
"""
from __future__ import annotations

import gzip
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..volume.orientation import ORTHONORMAL_TOL, check_not_sheared

log = logging.getLogger(__name__)

SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
SHEAR_PROBLEM = "sheared or non-orthonormal affine; resample the image onto an orthogonal grid first"
# Where nifti1.h / nifti2.h keep what we check, keyed by sizeof_hdr: struct formats and offsets.
_NIFTI_LAYOUT = {
    348: {"dim": ("h", 40), "datatype": ("h", 70), "vox_offset": ("f", 108), "sform_code": ("h", 254), "srow": ("f", 280)},
    540: {"dim": ("q", 16), "datatype": ("h", 12), "vox_offset": ("q", 168), "sform_code": ("i", 348), "srow": ("d", 400)},
}
_NIFTI_FLOATS = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64


@dataclass(frozen=True)
class _NiftiHeader:
    """The few NIfTI header facts that SimpleITK hides from us."""

    endian: str
    sform: Optional[np.ndarray]  # 3 x 3 linear part, when sform_code > 0
    float_dtype: Optional[str]  # numpy dtype of the voxels when they are floating point
    vox_offset: int
    n_voxels: int


def _has_supported_suffix(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in SUFFIXES)


def _itk_reason(exc: RuntimeError) -> str:
    """The informative line of an ITK exception (its message starts with source-file noise)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith("description:"):
            return ln.split(":", 1)[1].strip()
    return lines[-1] if lines else "unknown error"


def _nifti_opener(path: Path):
    return gzip.open if path.name.lower().endswith(".gz") else open


def _nifti_header(path: Path) -> Optional[_NiftiHeader]:
    """Parse the header, or None when the file is not NIfTI-1/2 (SimpleITK then says why)."""
    try:
        with _nifti_opener(path)(path, "rb") as fh:
            head = fh.read(540)
    except (OSError, EOFError):
        return None
    for endian in "<>":
        size = struct.unpack_from(endian + "i", head, 0)[0] if len(head) >= 4 else 0
        layout = _NIFTI_LAYOUT.get(size)
        if layout is None or len(head) < size:
            continue

        def field(name: str, count: int = 1):
            fmt, at = layout[name]
            values = struct.unpack_from(endian + fmt * count, head, at)
            return values if count > 1 else values[0]

        dim = field("dim", 8)
        n_dims = max(1, min(int(dim[0]), 7))
        sform = np.asarray(field("srow", 12), dtype=float).reshape(3, 4)[:, :3] if field("sform_code") > 0 else None
        return _NiftiHeader(
            endian=endian,
            sform=sform,
            float_dtype=_NIFTI_FLOATS.get(field("datatype")),
            vox_offset=int(field("vox_offset")),
            n_voxels=int(np.prod([max(1, int(d)) for d in dim[1 : n_dims + 1]])),
        )
    return None


def _check_nifti(path: Path, what: str) -> None:
    """Checks SimpleITK cannot do for NIfTI, because its reader hides the problem:

    - a sheared sform is silently replaced by the qform (the two then disagree about where the
      voxels are), so we refuse the file;
    - NaN and infinite voxels are read as 0 (seen with ITK 5.4), so we count them in the raw data.
    """
    header = _nifti_header(path)
    if header is None:
        return
    if header.sform is not None:
        norms = np.linalg.norm(header.sform, axis=0)
        d = header.sform / np.where(norms == 0, 1.0, norms)
        if np.any(norms == 0) or float(np.abs(d.T @ d - np.eye(3)).max()) > ORTHONORMAL_TOL:
            raise InputError(path, f"{SHEAR_PROBLEM} (NIfTI sform)")
    if header.float_dtype is not None:
        with _nifti_opener(path)(path, "rb") as fh:
            raw = fh.read()
        count = min(header.n_voxels, max(0, (len(raw) - header.vox_offset) // np.dtype(header.float_dtype).itemsize))
        data = np.frombuffer(raw, dtype=header.endian + header.float_dtype, count=count, offset=header.vox_offset)
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise InputError(path, f"the {what} has {bad} NaN or infinite voxel(s)")


def _read_dicom_series(folder: Path, what: str) -> sitk.Image:
    """The largest DICOM series in `folder` (a folder may also hold localisers or other series)."""
    try:
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as exc:
        raise InputError(folder, f"cannot scan the folder for DICOM files: {_itk_reason(exc)}") from None
    if not series:
        raise InputError(folder, f"folder holds no DICOM series (a {what} folder must contain one DICOM series)")
    files = {sid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series}
    chosen = max(series, key=lambda sid: len(files[sid]))
    if len(series) > 1:
        log.warning("%s: %d DICOM series found; reading the largest (%s, %d files)", folder, len(series), chosen, len(files[chosen]))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files[chosen])
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(folder, f"cannot read the DICOM series {chosen}: {_itk_reason(exc)}") from None


def _read_file(path: Path, what: str) -> sitk.Image:
    if not _has_supported_suffix(path):
        raise InputError(path, f"unsupported {what} format; use one of {', '.join(SUFFIXES)} or a DICOM series folder")
    if ".nii" in path.name.lower():
        _check_nifti(path, what)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = _itk_reason(exc)
        if "orthonormal" in reason:
            raise InputError(path, SHEAR_PROBLEM) from None
        raise InputError(path, f"cannot read the {what}: {reason}") from None


def check_volume(image: sitk.Image, path: Union[str, Path, None], what: str = "image") -> None:
    """Refuse anything but a scalar 3D volume with finite voxels and an unsheared affine."""
    dim = image.GetDimension()
    if dim == 2:
        raise InputError(path, f"the {what} is 2D (size {image.GetSize()}); a 3D volume is needed")
    if dim != 3:
        raise InputError(path, f"the {what} is {dim}D (size {image.GetSize()}); give a single 3D volume")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"the {what} has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar volume is needed")
    arr = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise InputError(path, f"the {what} has {bad} NaN or infinite voxel(s)")
    check_not_sheared(image, path)


def read_image(path: Union[str, Path], *, what: str = "image") -> sitk.Image:
    """Read a 3D volume (a file or a DICOM series folder) in its own pixel type.

    `what` names the role ("image", "cord mask", …) in error messages.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{what} file not found")
    image = _read_dicom_series(path, what) if path.is_dir() else _read_file(path, what)
    check_volume(image, path, what)
    return image
