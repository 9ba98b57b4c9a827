"""A study: one image, its spinal-cord mask (the ROI, lesions inside it), optional vertebral
levels and an optional lesion mask, all on the image's grid.

Masks may come on their own grids as long as they describe the same physical space; they are
resampled nearest-neighbour onto the image grid here, once, so every later stage can index
image and masks with the same voxel indices.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..volume.orientation import same_grid
from .images import check_volume, read_image

if TYPE_CHECKING:
    from ..levels.levels import Levels

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
_NII_GZ = ".nii.gz"


@dataclass
class Study:
    """Everything the pipeline needs about one acquisition; images share one grid."""

    id: str
    image: sitk.Image  # float32
    cord: sitk.Image  # uint8 0/1 on the image grid
    levels: Optional["Levels"] = None
    lesion: Optional[sitk.Image] = None  # uint8 0/1 on the image grid
    image_path: Optional[Path] = None
    cord_path: Optional[Path] = None
    levels_path: Optional[Path] = None
    cord_source: str = "given"  # "given" | "automatic" (segmented by u2adcore.segmentation: no mask was given)


def study_id_from_path(path: PathLike) -> str:
    """The file name without its image suffix ("sub-01_T2w.nii.gz" -> "sub-01_T2w")."""
    name = Path(path).name
    return name[: -len(_NII_GZ)] if name.lower().endswith(_NII_GZ) else Path(name).stem


def onto_image_grid(mask: sitk.Image, image: sitk.Image, path: Optional[PathLike], what: str) -> sitk.Image:
    """`mask` on `image`'s grid: as is when the grids agree, else resampled nearest-neighbour.

    A mask that does not land on the image at all is a mismatch between files (wrong subject,
    wrong space), not an empty ROI, so it gets its own message.
    """
    if same_grid(mask, image):
        out = sitk.Image(mask)
        out.CopyInformation(image)
        return out
    out = sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0, mask.GetPixelID())
    had = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    kept = int(np.count_nonzero(sitk.GetArrayViewFromImage(out)))
    if had and not kept:
        raise InputError(path, f"the {what} does not overlap the image in physical space (check that both come from the same scan)")
    if kept < had:
        log.warning("%s: part of the %s lies outside the image and is ignored", path, what)
    return out


def binary_mask(mask: sitk.Image, path: Optional[PathLike], what: str, label: Optional[int] = None) -> sitk.Image:
    """uint8 0/1 from a mask: `mask == label` when a label is given, else values must be 0/1."""
    arr = sitk.GetArrayViewFromImage(mask)
    if label is not None:
        out_arr = (arr == label).astype(np.uint8)
    else:
        values = np.unique(arr)
        extra = values[(values != 0) & (values != 1)]
        if extra.size:
            shown = ", ".join(f"{v:g}" for v in extra[:5]) + (" …" if extra.size > 5 else "")
            raise InputError(path, f"the {what} has values other than 0/1 ({shown}); give the label value to use (cord label)")
        out_arr = arr.astype(np.uint8)
    out = sitk.GetImageFromArray(out_arr)
    out.CopyInformation(mask)
    return out


def _require_contrast(image: sitk.Image, path: Optional[PathLike]) -> None:
    """Refuse a constant or near-constant image (volume/preprocess.contrast_problem) now, before a
    model is loaded or anything is written: it has nothing to analyse and would give maps and
    scores that mean nothing (or are not finite)."""
    from ..config import PreprocessConfig
    from ..volume.preprocess import contrast_problem

    problem = contrast_problem(sitk.GetArrayViewFromImage(image), PreprocessConfig.clip_percentiles)
    if problem is not None:
        raise InputError(path, f"the image cannot be analysed: {problem}")


def _checked_mask(mask: sitk.Image, image: sitk.Image, path: Optional[PathLike], what: str, label: Optional[int]) -> sitk.Image:
    check_volume(mask, path, what)
    return onto_image_grid(binary_mask(mask, path, what, label), image, path, what)


def _require_cord(cord: sitk.Image, path: Optional[PathLike], label: Optional[int]) -> None:
    if not np.any(sitk.GetArrayViewFromImage(cord)):
        which = f" (no voxel has label {label})" if label is not None else ""
        raise InputError(path, f"the cord mask is empty{which}")


def study_from_images(
    image: sitk.Image,
    cord: sitk.Image,
    levels: Optional["Levels"] = None,
    lesion: Optional[sitk.Image] = None,
    study_id: str = "study",
    *,
    cord_label: Optional[int] = None,
) -> Study:
    """A validated Study from in-memory images (generated studies, Slicer volumes)."""
    check_volume(image, None, "image")
    _require_contrast(image, None)
    cord_img = _checked_mask(cord, image, None, "cord mask", cord_label)
    _require_cord(cord_img, None, cord_label)
    lesion_img = None if lesion is None else _checked_mask(lesion, image, None, "lesion mask", None)
    return Study(id=study_id, image=sitk.Cast(image, sitk.sitkFloat32), cord=cord_img, levels=levels, lesion=lesion_img)


def study_from_arrays(
    image: np.ndarray,
    cord: np.ndarray,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    levels: Optional["Levels"] = None,
    lesion: Optional[np.ndarray] = None,
    study_id: str = "study",
) -> Study:
    """A Study from numpy arrays in SimpleITK order (z, y, x) and one shared geometry."""

    def as_image(arr: np.ndarray, dtype) -> sitk.Image:
        img = sitk.GetImageFromArray(np.asarray(arr, dtype=dtype))
        img.SetSpacing(tuple(float(s) for s in spacing))
        img.SetOrigin(tuple(float(o) for o in origin))
        img.SetDirection(tuple(float(d) for d in direction))
        return img

    return study_from_images(
        as_image(image, np.float32),
        as_image(cord, np.uint8),
        levels=levels,
        lesion=None if lesion is None else as_image(lesion, np.uint8),
        study_id=study_id,
    )


def load_study(
    image: PathLike,
    cord: Optional[PathLike],
    *,
    levels: Optional[PathLike] = None,
    levels_kind: Optional[str] = None,
    cord_label: Optional[int] = None,
    lesion: Optional[PathLike] = None,
    study_id: Optional[str] = None,
    segmenter=None,
) -> Study:
    """Read and validate a study from files (see ARCHITECTURE.md, io).

    `cord_label` selects one label of a multi-label mask; `levels_kind` is "discs" or "bodies"
    (None lets the levels reader decide from the file). Without `cord` the cord is segmented
    with `segmenter` (a u2adcore.segmentation.CordSegmenter; default the shipped model) and the
    study says so (cord_source "automatic"); a given mask always wins.
    """
    image_path = Path(image)
    cord_path = None if cord is None else Path(cord)
    img = read_image(image_path, what="image")
    _require_contrast(img, image_path)
    if cord_path is None:
        cord_img = _automatic_cord(img, image_path, segmenter)
    else:
        cord_img = _checked_mask(read_image(cord_path, what="cord mask"), img, cord_path, "cord mask", cord_label)
        _require_cord(cord_img, cord_path, cord_label)
    lesion_img = None
    if lesion is not None:
        lesion_img = _checked_mask(read_image(lesion, what="lesion mask"), img, lesion, "lesion mask", None)
    levels_obj, levels_path = None, None
    if levels is not None:
        from ..levels.levels import read_levels

        levels_path = Path(levels)
        levels_obj = read_levels(levels_path, levels_kind, reference=img, cord=cord_img)
    return Study(
        id=study_id or study_id_from_path(image_path),
        image=sitk.Cast(img, sitk.sitkFloat32),
        cord=cord_img,
        levels=levels_obj,
        lesion=lesion_img,
        image_path=image_path,
        cord_path=cord_path,
        levels_path=levels_path,
        cord_source="given" if cord_path is not None else "automatic",
    )


def _automatic_cord(img: sitk.Image, image_path: Path, segmenter) -> sitk.Image:
    from ..segmentation import load_segmenter

    seg = segmenter if segmenter is not None else load_segmenter()
    cord = seg.segment(img)
    if not np.any(sitk.GetArrayViewFromImage(cord)):
        raise InputError(image_path, "the automatic cord segmentation found no spinal cord in this image; give a cord mask (--cord)")
    return cord
