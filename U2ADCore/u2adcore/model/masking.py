"""Which patches to hide: only ROI patches, exactly round(r * n_roi) per image.

The model takes the mask from outside, so random, EU-guided and AU-excluding strategies are
interchangeable `MaskStrategy` objects. `mask_top_k` is the one place that turns per-patch scores
into a mask with the exact count, so every strategy obeys the same contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import torch


def masked_count(n_roi: torch.Tensor, ratio: float) -> torch.Tensor:
    """k = round(ratio * n_roi) per image, at least 1 when there is any ROI patch, at most n_roi."""
    k = torch.round(n_roi.to(torch.float64) * ratio).to(torch.long)
    k = torch.where(n_roi > 0, k.clamp(min=1), torch.zeros_like(k))
    return torch.minimum(k, n_roi.to(torch.long))


def mask_top_k(scores: torch.Tensor, roi_patches: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mask the k highest-scoring ROI patches of each image (k from `masked_count`).

    scores: [B, L] float (e.g. uniform noise, or log-probabilities plus Gumbel noise for
    sampling without replacement). Non-ROI patches are never chosen whatever their score.
    """
    k = masked_count(roi_patches.sum(dim=1), ratio)
    ranked = torch.where(roi_patches, scores.to(torch.float32), torch.tensor(float("-inf"), device=scores.device))
    order = torch.argsort(ranked, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (ranks < k[:, None]) & roi_patches


def uniform_scores(shape: torch.Size, generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    """U(0, 1) scores drawn on the generator's device (a CPU generator keeps CUDA runs reproducible)."""
    source = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=source).to(device)


def random_mask(roi_patches: torch.Tensor, ratio: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Uniformly random ROI patches, exact count per image. [B, L] bool -> [B, L] bool."""
    return mask_top_k(uniform_scores(roi_patches.shape, generator, roi_patches.device), roi_patches, ratio)


class MaskStrategy(Protocol):
    """A masking rule the training loop calls once per step.

    indices: [B] dataset indices of the batch (lets a strategy look up per-slice maps);
    roi_patches: [B, L] bool; generator: the step's RNG. Returns mask [B, L] bool, True = hidden,
    a subset of roi_patches. `name` labels progress events (e.g. "random", "EU-guided").
    """

    name: str

    def __call__(self, indices: torch.Tensor, roi_patches: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True)
class RandomMasking:
    """MAE's random masking restricted to the ROI (pretraining, METHOD.md §3)."""

    ratio: float = 0.75
    name: str = "random"

    def __call__(self, indices: torch.Tensor, roi_patches: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_mask(roi_patches, self.ratio, generator)
