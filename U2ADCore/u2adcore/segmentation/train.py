"""Training the cord U-Net on 2.5D sagittal crops with augmentation for what differs between
scanners (docs/SEGMENTATION.md): in-plane rotation and scale (posture, oblique planning, body
size), left-right mirroring, lower resolution in-plane and thicker slices, a smooth bias field,
contrast (gamma, gain, offset) and noise. Each step draws subjects uniformly, so a small crop
from another scanner weighs as much as a whole errsm volume.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import CordSegConfig
from ..progress import ProgressCallback, ProgressEvent, emit
from .grid import neighbours
from .network import build_unet


@dataclass
class TrainVolume:
    """One training subject on the working grid."""

    name: str
    array: np.ndarray  # (LR, SI, AP) in [0, 1]
    mask: np.ndarray  # bool, same shape
    weight: float = 1.0  # relative probability of being drawn

    def __post_init__(self) -> None:
        lr = np.flatnonzero(self.mask.any(axis=(1, 2)))
        self.cord_slices = np.arange(max(lr[0] - 2, 0), min(lr[-1] + 3, self.mask.shape[0]))


def _sample_grid(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float], patch: int) -> torch.Tensor:
    """A (1, P, P, 2) grid_sample grid: a P × P crop at `centre`, rotated ±25°, scaled 0.8-1.25."""
    theta = math.radians(rng.uniform(-25.0, 25.0))
    scale = rng.uniform(0.8, 1.25)
    r = np.arange(patch) - (patch - 1) / 2.0
    rr, cc = np.meshgrid(r, r, indexing="ij")
    cos, sin = math.cos(theta) * scale, math.sin(theta) * scale
    src_r = centre[0] + cos * rr - sin * cc
    src_c = centre[1] + sin * rr + cos * cc
    h, w = shape
    grid = np.stack([(2 * src_c + 1) / w - 1, (2 * src_r + 1) / h - 1], axis=-1)
    return torch.from_numpy(grid[None].astype(np.float32))


def _draw(vol: TrainVolume, rng: np.random.Generator, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    if rng.random() < 0.8:
        i = int(rng.choice(vol.cord_slices))
    else:
        i = int(rng.integers(vol.array.shape[0]))
    x = torch.from_numpy(neighbours(vol.array, i))  # (3, SI, AP)
    y = torch.from_numpy(vol.mask[i].astype(np.float32))[None]
    cord = np.argwhere(vol.mask[i])
    if cord.size and rng.random() < 0.8:
        centre = cord[rng.integers(len(cord))] + rng.normal(0.0, patch / 6.0, 2)
    else:
        centre = rng.uniform(0, 1, 2) * np.array(x.shape[1:])
    grid = _sample_grid(rng, tuple(x.shape[1:]), tuple(centre), patch)
    xs = F.grid_sample(x[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    ys = F.grid_sample(y[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    if rng.random() < 0.5:  # left-right mirror: the neighbours swap
        xs = xs.flip(0)
    return xs, (ys >= 0.5).float()


def augment_intensity(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Scanner differences on one (3, P, P) crop in [0, 1]; the result is again in [0, 1]."""
    p = x.shape[-1]
    if rng.random() < 0.3:  # thick slices: partial volume from the neighbours
        w = rng.uniform(0.1, 0.33)
        x = torch.stack([x[0], (1 - 2 * w) * x[1] + w * (x[0] + x[2]), x[2]])
    if rng.random() < 0.35:  # lower in-plane resolution along one or both axes
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        if k != (1, 1):
            low = F.avg_pool2d(x[None], kernel_size=k, stride=k, ceil_mode=True)
            x = F.interpolate(low, size=(p, p), mode="bilinear", align_corners=False)[0]
    r = torch.linspace(-1, 1, p)
    rr, cc = torch.meshgrid(r, r, indexing="ij")
    c = rng.normal(0.0, 0.25, 5)
    bias = torch.exp(float(c[0]) * rr + float(c[1]) * cc + float(c[2]) * rr * cc + float(c[3]) * rr**2 + float(c[4]) * cc**2)
    x = x * bias
    x = x.clamp(min=0.0) ** float(np.exp(rng.normal(0.0, 0.3)))
    x = x * rng.uniform(0.75, 1.25) + rng.uniform(-0.1, 0.1)
    x = x + torch.randn_like(x) * float(rng.uniform(0.0, 0.07))
    return x.clamp(0.0, 1.5)


def train_cordseg(
    volumes: list[TrainVolume],
    cfg: CordSegConfig,
    *,
    steps: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
) -> tuple[torch.nn.Module, list[float]]:
    """Train from scratch (seeded: the same volumes and settings give the same weights on one
    thread). Returns the network in eval mode and the loss per step."""
    from monai.losses import DiceCELoss

    steps = cfg.steps if steps is None else steps
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = build_unet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    loss_fn = DiceCELoss(sigmoid=True, smooth_nr=1e-3, smooth_dr=1e-3)
    prob = np.array([v.weight for v in volumes], float)
    prob /= prob.sum()
    losses: list[float] = []
    start = time.perf_counter()
    net.train()
    for step in range(steps):
        xs, ys = [], []
        for _ in range(cfg.batch):
            vol = volumes[int(rng.choice(len(volumes), p=prob))]
            x, y = _draw(vol, rng, cfg.patch)
            xs.append(augment_intensity(x, rng))
            ys.append(y)
        logits = net(torch.stack(xs))
        loss = loss_fn(logits, torch.stack(ys))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress is not None and (step % 25 == 0 or step == steps - 1):
            elapsed = time.perf_counter() - start
            emit(progress, ProgressEvent("step", task="train-cordseg", step=step + 1, steps=steps, loss=float(np.mean(losses[-25:])),
                                         lr=sched.get_last_lr()[0], fraction=(step + 1) / steps,
                                         eta_s=elapsed / (step + 1) * (steps - step - 1)))
    net.eval()
    return net, losses
