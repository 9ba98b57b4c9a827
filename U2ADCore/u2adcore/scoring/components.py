"""Connected components ranked by score: shared by detection post-processing (METHOD.md §6)
and the AU-guided exclusion during adaptation (METHOD.md §5)."""
from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

_EIGHT = np.ones((3, 3), dtype=bool)


def top_components(
    binary: np.ndarray,
    weights: np.ndarray,
    k: int = 3,
    min_size: int = 1,
    score: Literal["sum", "mean_sum"] = "sum",
) -> np.ndarray:
    """Label the 8-connected components of a 2D `binary` image and keep the `k` best.

    A component's score is the sum of `weights` over it ("sum", the paper) or mean x sum
    ("mean_sum", the research code); components smaller than `min_size` pixels are dropped.
    Returns int32 labels 1..k, 1 the highest-scoring, 0 elsewhere.
    """
    binary = np.asarray(binary, dtype=bool)
    if binary.ndim != 2:
        raise ValueError(f"top_components expects a 2D image, got shape {binary.shape}")
    labels, n = ndimage.label(binary, structure=_EIGHT)
    out = np.zeros(binary.shape, dtype=np.int32)
    if n == 0:
        return out
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones_like(weights, dtype=np.float64), labels, index)
    sums = ndimage.sum_labels(np.asarray(weights, dtype=np.float64), labels, index)
    scores = sums * (sums / np.maximum(sizes, 1)) if score == "mean_sum" else sums
    scores = np.where(sizes >= min_size, scores, -np.inf)
    order = [i for i in np.argsort(-scores, kind="stable") if np.isfinite(scores[i])][:k]
    for rank, i in enumerate(order, start=1):
        out[labels == index[i]] = rank
    return out
