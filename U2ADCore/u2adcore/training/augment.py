"""Intensity augmentation of METHOD.md §3, batched in torch with an explicit generator.

Order as in the research code: brightness (x * b) and contrast (about the image mean, x c),
each clipped to [0, 1] like the 8-bit image operations there, then Gaussian noise and a clip,
then per-image min-max back to [0, 1]. The clips are what make brightness matter: without them
the final min-max would undo any affine change.

Before them, when enabled, what differs between scanners (not in the paper): tissue contrast
(gamma), coil sensitivity (a smooth bias field) and resolution (a blur). Each draws random
numbers only when it is on, so a recipe without them trains exactly as before.
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


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x [B, 1, H, W] blurred with an isotropic Gaussian of `sigma` [B] pixels per image
    (separable, reflect-padded; sigma 0 leaves the image as it is)."""
    b = x.shape[0]
    radius = max(1, int(math.ceil(3.0 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t[None, :] / sigma.to(x.dtype).clamp_min(1e-3)[:, None]) ** 2)
    k = (k / k.sum(dim=1, keepdim=True))[:, None, None, :]  # [B, 1, 1, L]
    y = torch.nn.functional.pad(x.transpose(0, 1), (radius, radius, 0, 0), mode="reflect")
    y = torch.nn.functional.conv2d(y, k, groups=b)
    y = torch.nn.functional.pad(y, (0, 0, radius, radius), mode="reflect")
    y = torch.nn.functional.conv2d(y, k.transpose(2, 3), groups=b)
    return y.transpose(0, 1)


def scanner(x: torch.Tensor, cfg: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Gamma, bias field and blur of `cfg` (each only when enabled), result in [0, 1]."""
    b, _, h, w = x.shape
    if cfg.gamma != (1.0, 1.0):
        x = x.clamp_min(0.0) ** _uniform(b, cfg.gamma, generator)
    if cfg.bias_field > 0:
        a = _uniform(b, (-cfg.bias_field, cfg.bias_field), generator)
        c = _uniform(b, (-cfg.bias_field, cfg.bias_field), generator)
        u = torch.linspace(-1.0, 1.0, h, device=x.device)[None, None, :, None]
        v = torch.linspace(-1.0, 1.0, w, device=x.device)[None, None, None, :]
        x = (x * torch.exp(a * u + c * v)).clamp(0.0, 1.0)
    if cfg.blur_sigma > 0:
        x = gaussian_blur(x, cfg.blur_sigma * torch.rand(b, generator=generator, device=generator.device))
    return x


def augment(x: torch.Tensor, cfg: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """x [B, 1, H, W] in [0, 1] (on the generator's device) -> augmented, in [0, 1]."""
    b = x.shape[0]
    x = scanner(x, cfg, generator)
    x = (x * _uniform(b, cfg.brightness, generator)).clamp(0.0, 1.0)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (mean + _uniform(b, cfg.contrast, generator) * (x - mean)).clamp(0.0, 1.0)
    noise = torch.randn(x.shape, generator=generator, device=generator.device) * math.sqrt(cfg.noise_var)
    return min_max((x + noise).clamp(0.0, 1.0))
