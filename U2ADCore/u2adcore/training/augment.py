"""Intensity augmentation of METHOD.md §3, batched in torch with an explicit generator.

Order as in the research code: brightness (x * b) and contrast (about the image mean, x c),
each clipped to [0, 1] like the 8-bit image operations there, then Gaussian noise and a clip,
then per-image min-max back to [0, 1]. The clips are what make brightness matter: without them
the final min-max would undo any affine change.
"""
from __future__ import annotations

import math

import torch

from ..config import TrainConfig


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=generator, device=generator.device)


def min_max(x: torch.Tensor) -> torch.Tensor:
    """Per-image min-max to [0, 1]; a constant image becomes 0."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp(min=1e-8)


def augment(x: torch.Tensor, cfg: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """x [B, 1, H, W] in [0, 1] (on the generator's device) -> augmented, in [0, 1]."""
    b = x.shape[0]
    x = (x * _uniform(b, cfg.brightness, generator)).clamp(0.0, 1.0)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (mean + _uniform(b, cfg.contrast, generator) * (x - mean)).clamp(0.0, 1.0)
    noise = torch.randn(x.shape, generator=generator, device=generator.device) * math.sqrt(cfg.noise_var)
    return min_max((x + noise).clamp(0.0, 1.0))
