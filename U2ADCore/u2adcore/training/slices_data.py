"""A training set in memory: prepared 2D slices stacked into arrays.

Slices without any ROI patch are dropped when the set is built: nothing in them can be masked,
so they add compute and no loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from ..config import PreprocessConfig
from ..errors import InputError
from ..progress import CancelToken, ProgressCallback, ProgressEvent, emit


@dataclass(frozen=True)
class SliceInfo:
    study_id: str
    slice_index: int  # canonical left-right index in its study


@dataclass
class SliceArrays:
    """images float32 [N, 1, H, W] in [0, 1]; roi bool [N, 1, H, W]; meta one SliceInfo per slice."""

    images: np.ndarray
    roi: np.ndarray
    meta: list[SliceInfo] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.shape != self.roi.shape or self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(f"images {self.images.shape} and roi {self.roi.shape} must both be [N, 1, H, W]")
        if len(self.meta) != len(self.images):
            raise ValueError(f"{len(self.meta)} meta entries for {len(self.images)} slices")

    def __len__(self) -> int:
        return len(self.images)

    def studies(self) -> list[str]:
        return sorted({m.study_id for m in self.meta})

    def summary(self) -> dict:
        """What a checkpoint records about its training data."""
        return {"n_studies": len(self.studies()), "n_slices": len(self), "studies": self.studies()}


def _empty() -> SliceArrays:
    return SliceArrays(np.zeros((0, 1, 0, 0), np.float32), np.zeros((0, 1, 0, 0), bool), [])


def from_prepared(slices: Sequence) -> SliceArrays:
    """Stack `PreparedSlice`s, keeping those with any cord pixel."""
    kept = [s for s in slices if s.roi.any()]
    if not kept:
        return _empty()
    return SliceArrays(
        images=np.stack([s.image for s in kept])[:, None].astype(np.float32),
        roi=np.stack([s.roi for s in kept])[:, None].astype(bool),
        meta=[SliceInfo(s.study_id, int(s.transform.slice_index)) for s in kept],
    )


def concat(parts: Iterable[SliceArrays]) -> SliceArrays:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty()
    return SliceArrays(
        images=np.concatenate([p.images for p in parts]),
        roi=np.concatenate([p.roi for p in parts]),
        meta=[m for p in parts for m in p.meta],
    )


def load_entries(
    entries: Sequence,
    preprocess: PreprocessConfig,
    *,
    source: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    task: str = "pretrain",
) -> SliceArrays:
    """Load and prepare every study of a manifest (ManifestEntry list) into one SliceArrays.

    A study that yields no slice with cord is an InputError naming it (and `source`), since a
    silently smaller training set would go unnoticed.
    """
    from ..volume.preprocess import prepare_slices

    parts = []
    for i, entry in enumerate(entries):
        if cancel is not None:
            cancel.check()
        study = entry.load()
        arrays = from_prepared(prepare_slices(study, preprocess))
        if not len(arrays):
            raise InputError(source or getattr(study, "image_path", None), f"study {study.id!r} has no slice with cord in its mask")
        parts.append(arrays)
        emit(progress, ProgressEvent("message", task=task, step=i + 1, steps=len(entries),
                                     fraction=(i + 1) / len(entries), message=f"loaded {study.id}: {len(arrays)} slices"))
    return concat(parts)

