"""IterMask's network (docs/ITERMASK.md): a small 2D U-Net that inpaints the masked cord from the
visible image, the mask itself and the image's high-frequency part.

IterMask3D feeds the masked volume plus a high-pass (FFT) image to a 3D U-Net. Here a slice is
2D and a cord lesion is 3-7 mm wide, so the high frequency is x - Gaussian(x, 1 mm): it hands the
network the cord/CSF border and texture under the mask, while the intensity of anything as wide
as a lesion has to come from the visible context. The mask is a third input channel (IterMask3D
fills masked voxels with noise and lets the network guess where they are).

The forward signature `(x, roi_pixels, mask)` with flattened pixel flags is the one the
project's training loop calls (EdgeMAE: `(x, roi_patches, mask)`); for this network a "patch"
is one pixel (`cfg.patch_size == 1`).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import IterMaskConfig


def gaussian_kernel(sigma_px: float) -> torch.Tensor:
    """1D normalised Gaussian, radius 3 sigma (at least 1 tap either side)."""
    radius = max(1, int(math.ceil(3.0 * sigma_px)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / max(sigma_px, 1e-6)) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] with reflected borders (C blurred independently)."""
    if sigma_px <= 0:
        return x
    k = gaussian_kernel(sigma_px).to(device=x.device, dtype=x.dtype)
    r, c = len(k) // 2, x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect" if min(x.shape[-2:]) > r else "replicate")
    x = F.conv2d(x, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def high_frequency(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """x - Gaussian(x): a difference-of-Gaussians high-pass without the ringing of an ideal FFT cut."""
    return x - gaussian_blur(x, sigma_px)


def masked_blur(values: torch.Tensor, weights: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian average of `values` over the pixels where `weights` > 0 (normalised convolution),
    so pixels outside the cord neither pull the average down nor leak in."""
    w = weights.to(values.dtype)
    num = gaussian_blur(values * w, sigma_px)
    den = gaussian_blur(w, sigma_px)
    return torch.where(den > 1e-6, num / den.clamp(min=1e-6), torch.zeros_like(num)) * w


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.2))


class IterMaskNet(nn.Module):
    """U-Net: one double conv per entry of cfg.channels, 2x max-pool down, transposed-conv up,
    skip connections; input [masked image, high frequency, mask], sigmoid output in [0, 1]."""

    patch_size = 1

    def __init__(self, cfg: IterMaskConfig, spacing_mm: float = 1.0):
        super().__init__()
        self.cfg = cfg
        self.spacing_mm = spacing_mm
        chans = list(cfg.channels)
        self.down = nn.ModuleList()
        c_in = 3
        for c in chans:
            self.down.append(_double_conv(c_in, c))
            c_in = c
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for c in reversed(chans[:-1]):
            self.up.append(nn.ConvTranspose2d(c_in, c, 2, stride=2))
            self.merge.append(_double_conv(2 * c, c))
            c_in = c
        self.head = nn.Conv2d(c_in, 1, 1)

    @property
    def multiple(self) -> int:
        """Grid sides must be multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.cfg.channels) - 1)

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, 1, H, W] in [0, 1], mask [B, 1, H, W] bool (True = hidden) -> [B, 1, H, W] in [0, 1]."""
        m = mask.to(x.dtype)
        hf = high_frequency(x, self.cfg.hf_sigma_mm / self.spacing_mm)
        h = torch.cat([x * (1.0 - m), hf, m], dim=1)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            h = merge(torch.cat([up(h), skip], dim=1))
        return torch.sigmoid(self.head(h))

    # -- the interface of training/loop.py ---------------------------------------------------
    def forward(self, x: torch.Tensor, roi_pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Loop signature: mask [B, H*W] bool flags (a subset of roi_pixels)."""
        if bool((mask & ~roi_pixels).any()):
            raise ValueError("mask hides pixels outside the ROI; only cord pixels may be masked")
        return self.reconstruct(x, mask.reshape(x.shape[0], 1, *x.shape[-2:]))

    def loss_weights(self, roi: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W]: 1 on masked cord pixels, cfg.unmasked_weight on visible cord pixels."""
        m = mask.reshape(roi.shape).to(torch.float32)
        return roi.to(torch.float32) * (m + self.cfg.unmasked_weight * (1.0 - m))

    def loss(self, x: torch.Tensor, roi: torch.Tensor, out: torch.Tensor, mask: torch.Tensor, *,
             denominator: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Weighted MSE over the cord (masked pixels to inpaint, visible ones to pass through)."""
        w = self.loss_weights(roi, mask)
        denom = (w.sum() if denominator is None else denominator).clamp(min=1.0)
        return ((out.float() - x.float()) ** 2 * w).sum() / denom
