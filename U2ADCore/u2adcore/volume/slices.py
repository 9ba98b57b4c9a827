"""Which sagittal slices of a canonical volume are analysed (METHOD.md §2).

"Middle" means the slice with the most cord, not the array centre: a scan's field of view is
rarely centred on the cord, and the slice through the cord's midline is where a 2D sagittal
reading (and the paper's detection) happens.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)


def cord_area_per_slice(cord_canonical: np.ndarray) -> np.ndarray:
    """Number of cord voxels in each sagittal slice (`arr[i]`) of a canonical mask array."""
    cord = np.asarray(cord_canonical)
    if cord.ndim != 3:
        raise ValueError(f"expected a 3D canonical mask array, got shape {cord.shape}")
    return np.count_nonzero(cord.reshape(cord.shape[0], -1), axis=1)


def mid_sagittal_index(cord_canonical: np.ndarray) -> int:
    """The slice with the most cord; ties go to the one nearest the cord's left-right centre."""
    area = cord_area_per_slice(cord_canonical)
    if not area.any():
        raise ValueError("the cord mask is empty: no mid-sagittal slice")
    idx = np.arange(area.size)
    centre = float((area * idx).sum() / area.sum())
    best = np.flatnonzero(area == area.max())
    return int(best[np.argmin(np.abs(best - centre))])


def select_slices(cord_canonical: np.ndarray, n_slices: int = 1, slices: Optional[Sequence[int]] = None) -> list[int]:
    """Canonical left-right indices to analyse, in increasing order.

    `slices` (explicit indices) wins over `n_slices`; an index outside the volume is an
    InputError. Otherwise `n_slices` consecutive slices centred on the mid-sagittal slice; near a
    volume end the window is shifted inward, and a request for more slices than the volume has
    takes them all, both with a logged warning rather than a crash.
    """
    n_lr = int(np.asarray(cord_canonical).shape[0])
    if slices is not None:
        chosen = sorted({int(i) for i in slices})
        bad = [i for i in chosen if not 0 <= i < n_lr]
        if bad or not chosen:
            raise InputError("preprocess.slices", f"slice indices {bad or list(slices)} are outside the volume's {n_lr} sagittal slices (0..{n_lr - 1})")
        return chosen
    if n_slices < 1:
        raise InputError("preprocess.n_slices", f"n_slices must be at least 1, got {n_slices}")
    if n_slices > n_lr:
        log.warning("asked for %d sagittal slices but the volume has %d; using all of them", n_slices, n_lr)
        return list(range(n_lr))
    mid = mid_sagittal_index(cord_canonical)
    start = mid - (n_slices - 1) // 2
    clamped = min(max(start, 0), n_lr - n_slices)
    if clamped != start:
        log.warning(
            "%d slices centred on slice %d run past the volume's end (%d slices); using %d..%d",
            n_slices, mid, n_lr, clamped, clamped + n_slices - 1,
        )
    return list(range(clamped, clamped + n_slices))
