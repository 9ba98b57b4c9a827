"""Uncertainty-guided masking for adaptation (METHOD.md §5).

Stage 1 masks high-EU patches more often, so the model trains where it is least confident.
Stage 2 also finds anomaly candidates on the AU map and never masks the patches that touch
them, so the model never learns to reconstruct a lesion and its error there stays high.
Pure functions over tensors/arrays; the state (maps per training slice) lives in adapt.py.
"""
from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import torch

from ..model.masking import masked_count
from ..model.patches import patchify
from ..scoring.components import top_components

Scaling = Literal["mean", "zscore"]


def patch_sums(maps: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Sum of a [B, H, W] map over each patch -> [B, L] float64 (the paper's EU patch score)."""
    return patchify(maps.double()[:, None], patch_size).sum(dim=-1)


def scale_scores(scores: torch.Tensor, eligible: torch.Tensor, scaling: Scaling) -> torch.Tensor:
    """Per-image scaling of patch scores over the eligible patches.

    Raw EU sums are ~1e-3, so a softmax at any sensible temperature would be flat; dividing by
    the image's mean (or z-scoring) makes T mean the same on every image and every model.
    Images whose scores are all equal get zeros (uniform masking). Ineligible entries are 0.
    """
    scores = scores.double()
    w = eligible.double()
    n = w.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (scores * w).sum(dim=1, keepdim=True) / n
    tiny = torch.finfo(torch.float64).tiny
    if scaling == "mean":
        scaled = torch.where(mean > 0, scores / mean.clamp_min(tiny), torch.zeros_like(scores))
    elif scaling == "zscore":
        std = (((scores - mean) ** 2) * w).sum(dim=1, keepdim=True).div(n).sqrt()
        scaled = torch.where(std > 0, (scores - mean) / std.clamp_min(tiny), torch.zeros_like(scores))
    else:
        raise ValueError(f"unknown EU scaling {scaling!r}; choose 'mean' or 'zscore'")
    return torch.where(eligible, scaled, torch.zeros_like(scaled))


def gumbel_top_k(logits: torch.Tensor, eligible: torch.Tensor, k: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Draw k[b] eligible entries of row b without replacement, with probabilities softmax(logits)
    (successive draws renormalised: the Plackett-Luce model) -> bool [B, L]."""
    u = torch.rand(logits.shape, generator=generator, device=generator.device, dtype=torch.float64).to(logits.device)
    gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(torch.float64).tiny)))  # u < 1 always
    keys = logits.double() + gumbel
    keys = torch.where(eligible, keys, torch.full_like(keys, -torch.inf))
    order = torch.argsort(keys, dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < k[:, None]) & eligible


def eu_guided_mask(
    roi_patches: torch.Tensor,
    patch_eu: torch.Tensor,
    ratio: float,
    temperature: float,
    scaling: Scaling,
    generator: torch.Generator,
    exclude: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """EU-guided mask [B, L]: per image k = round(r · n_roi) ROI patches drawn without replacement
    with probabilities softmax(scaled EU / T), so high-EU patches are masked MORE often.

    `exclude` ([B, L] bool) patches are never masked; k is then drawn among the remaining ROI
    patches, and when fewer than k remain all of them are masked.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    roi_patches = roi_patches.bool()
    eligible = roi_patches if exclude is None else roi_patches & ~exclude.bool()
    k = torch.minimum(masked_count(roi_patches.sum(dim=1), ratio), eligible.sum(dim=1))
    logits = scale_scores(patch_eu.to(roi_patches.device), eligible, scaling) / temperature
    return gumbel_top_k(logits, eligible, k, generator)


def au_candidates(
    au: np.ndarray,
    roi: np.ndarray,
    percentile: float = 90.0,
    top_k: int = 3,
    min_size: int = 2,
    score: Literal["sum", "mean_sum"] = "sum",
) -> np.ndarray:
    """Anomaly candidates on one slice's AU map: ROI pixels above the slice's `percentile` of AU
    inside the cord, 8-connected components of at least `min_size` pixels, the `top_k` by score.
    Returns int32 labels [H, W] (1 = best, 0 = none)."""
    au = np.asarray(au, dtype=np.float64)
    roi = np.asarray(roi, dtype=bool)
    if au.shape != roi.shape or au.ndim != 2:
        raise ValueError(f"au_candidates expects two 2D arrays of one shape, got {au.shape} and {roi.shape}")
    if not roi.any():
        return np.zeros(au.shape, dtype=np.int32)
    threshold = np.percentile(au[roi], percentile)
    return top_components(roi & (au > threshold), au, k=top_k, min_size=min_size, score=score)
