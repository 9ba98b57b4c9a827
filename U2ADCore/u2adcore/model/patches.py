"""Patch geometry shared by the model, masking and uncertainty (ARCHITECTURE.md "Patches").

Patch index = row * grid + col (row-major), the order `patchify` produces, so a `[B, L]` mask
means the same patches everywhere.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def grid_size(img_size: int, patch_size: int) -> int:
    """Patches per side; the image must tile exactly so that no pixel is silently dropped."""
    if img_size % patch_size:
        raise ValueError(f"image size {img_size} is not a multiple of the patch size {patch_size}")
    return img_size // patch_size


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, L, p*p*C]."""
    b, c, h, w = x.shape
    p = patch_size
    x = x.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 1) -> torch.Tensor:
    """[B, L, p*p*C] -> [B, C, H, W] for a square grid; the inverse of `patchify`."""
    b, n, _ = patches.shape
    g = int(round(n**0.5))
    p = patch_size
    x = patches.reshape(b, g, g, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, g * p, g * p)


def roi_patches(roi: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, 1, H, W] bool ROI -> [B, L] bool: a patch is an ROI patch if it holds any ROI pixel."""
    pooled = F.max_pool2d(roi.to(torch.float32), kernel_size=patch_size, stride=patch_size)
    return pooled.flatten(1) > 0


def patch_to_pixels(patch_mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, L] patch flags -> [B, 1, H, W] pixel flags (each patch's flag over its p x p pixels)."""
    b, n = patch_mask.shape
    g = int(round(n**0.5))
    grid = patch_mask.reshape(b, 1, g, g)
    return grid.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def dilate_patches(patch_mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Patches within `radius` patches (Chebyshev distance) of a flagged patch: the context band."""
    b, n = patch_mask.shape
    g = int(round(n**0.5))
    grid = patch_mask.reshape(b, 1, g, g).to(torch.float32)
    grown = F.max_pool2d(grid, kernel_size=2 * radius + 1, stride=1, padding=radius)
    return grown.flatten(1) > 0


def select_tokens(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather plan for per-image variable token counts.

    keep: [B, L] bool. Returns (ids [B, T], valid [B, T]) with T = the largest count in the batch:
    row b lists its kept patch indices in ascending order, then padding (valid False).
    """
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    t = int(keep.sum(dim=1).max().item()) if keep.numel() else 0
    ids = order[:, :t]
    return ids, keep.gather(1, ids)
