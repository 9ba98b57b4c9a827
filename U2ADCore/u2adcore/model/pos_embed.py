"""Fixed 2D sine-cosine positional embeddings (MAE): half the channels encode the patch row,
half the column, so the model knows where a patch sits without learning it."""
from __future__ import annotations

import torch


def _sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[N] positions -> [N, dim] (dim even): sin then cos at geometric frequencies."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """[grid*grid, dim] float32 embedding, patch index = row * grid + col."""
    if dim % 4:
        raise ValueError(f"embedding dim {dim} must be a multiple of 4 for 2D sin-cos embeddings")
    rows = torch.arange(grid).repeat_interleave(grid)
    cols = torch.arange(grid).repeat(grid)
    return torch.cat([_sincos_1d(dim // 2, rows), _sincos_1d(dim // 2, cols)], dim=1).to(torch.float32)
