"""Which patches each Monte-Carlo pass masks (METHOD.md §4).

A plan is a flat list of (image, mask) passes, so that passes of every image can be stacked into
big forward batches. `counted` marks the masked patches whose reconstruction enters the
statistics: every ROI patch is counted exactly K times under both schedules, so the two only
differ in how many passes they need and in how the masks are correlated.

- "balanced": the ROI patches of an image are laid out in K random orders one after the other,
  and pass j masks the next k = round(r · n) entries. Every pass keeps the exact ratio and only
  ⌈K·n/k⌉ passes are needed (14 for K = 10, r = 0.75). Where a pass straddles two orders, the new
  order is drawn so that the pass never holds a patch twice.
- "independent": the research code's way: fresh uniform k-subsets until every ROI patch has been
  masked K times, counting the first K reconstructions of each patch (≈ 20 passes for K = 10).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..model.masking import masked_count

Schedule = Literal["balanced", "independent"]
SCHEDULES: tuple[str, ...] = ("balanced", "independent")


@dataclass(frozen=True)
class PassPlan:
    """Pass p reconstructs image `image[p]` with `mask[p]`; `counted[p]` ⊆ `mask[p]`."""

    image: np.ndarray  # int64 [P]
    mask: np.ndarray  # bool [P, L]
    counted: np.ndarray  # bool [P, L]

    @property
    def n_passes(self) -> int:
        return int(self.image.shape[0])

    def passes_per_image(self, n_images: int) -> np.ndarray:
        return np.bincount(self.image, minlength=n_images)


def _balanced_order(n: int, k: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """`rounds` permutations of range(n), concatenated, such that no window [j·k, (j+1)·k)
    holds an entry twice.

    A window holds at most two neighbouring orders (k ≤ n). Where it straddles a boundary, the
    next order's head is drawn from the patches that the previous order's tail did not hold;
    given that constraint the order is still uniform.
    """
    orders = [rng.permutation(n)]
    for m in range(1, rounds):
        a = (m * n) % k  # entries of the previous order inside the straddling window
        if a == 0:
            orders.append(rng.permutation(n))
            continue
        tail = orders[-1][n - a :]
        allowed = rng.permutation(np.setdiff1d(np.arange(n), tail, assume_unique=True))
        head = allowed[: k - a]
        rest = rng.permutation(np.concatenate([allowed[k - a :], tail]))
        orders.append(np.concatenate([head, rest]))
    return np.concatenate(orders)


def _image_passes_balanced(n: int, k: int, K: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(local patch index [P, k], counted [P, k]) for one image with n ROI patches."""
    passes = -(-K * n // k)
    rounds = -(-passes * k // n)
    seq = _balanced_order(n, k, rounds, rng)[: passes * k].reshape(passes, k)
    counted = (np.arange(passes * k) < K * n).reshape(passes, k)
    return seq, counted


def _image_passes_independent(n: int, k: int, K: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Independent uniform k-subsets until each of the n patches is masked K times."""
    seqs, counted_rows = [], []
    counts = np.zeros(n, dtype=np.int64)
    while counts.min() < K:
        chosen = rng.permutation(n)[:k]
        counted = counts[chosen] < K
        counts[chosen[counted]] += 1
        seqs.append(chosen)
        counted_rows.append(counted)
    return np.stack(seqs), np.stack(counted_rows)


def make_plan(roi_patches: np.ndarray, ratio: float, K: int, schedule: Schedule, rng: np.random.Generator,
              *, keep_visible: bool = False) -> PassPlan:
    """The passes that reconstruct every ROI patch of every image exactly K times.

    `roi_patches` is bool [B, L]. Images without an ROI patch get no pass. `keep_visible`: never
    hide every ROI patch of an image that has two or more (a high ratio on a small cord would
    otherwise leave the model no cord to reconstruct from).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown Monte-Carlo schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if K < 1:
        raise ValueError(f"Monte-Carlo samples K must be at least 1, got {K}")
    roi_patches = np.asarray(roi_patches, dtype=bool)
    n_images, n_patches = roi_patches.shape
    per_image = _image_passes_balanced if schedule == "balanced" else _image_passes_independent
    n_roi = torch.from_numpy(roi_patches.sum(axis=1))
    k_t = masked_count(n_roi, ratio)
    if keep_visible:
        k_t = torch.where(n_roi >= 2, torch.minimum(k_t, n_roi - 1), k_t)
    ks = k_t.tolist()
    images, masks, counts = [], [], []
    for b in range(n_images):
        idx = np.flatnonzero(roi_patches[b])
        if idx.size == 0:
            continue
        seq, counted = per_image(idx.size, ks[b], K, rng)
        rows = np.repeat(np.arange(seq.shape[0]), seq.shape[1])
        mask = np.zeros((seq.shape[0], n_patches), dtype=bool)
        mask[rows, idx[seq.ravel()]] = True
        count = np.zeros_like(mask)
        count[rows, idx[seq.ravel()]] = counted.ravel()
        images.append(np.full(seq.shape[0], b, dtype=np.int64))
        masks.append(mask)
        counts.append(count)
    if not images:
        empty = np.zeros((0, n_patches), dtype=bool)
        return PassPlan(np.zeros(0, dtype=np.int64), empty, empty.copy())
    return PassPlan(np.concatenate(images), np.concatenate(masks), np.concatenate(counts))
