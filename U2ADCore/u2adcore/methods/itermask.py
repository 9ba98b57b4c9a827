"""IterMask as a detector (docs/ITERMASK.md): iterative mask refinement at test time.

Start with the whole cord hidden; reconstruct it from the context, the mask and the
high-frequency image; unmask the hidden pixels whose error is at most the subject's threshold
(the lowest-error ones first, at most `step_fraction` of the cord per round), so that the
tissue just declared normal guides the next reconstruction of what is still hidden; repeat until
no hidden pixel is at or below the threshold. The mask never grows. The threshold is the healthy
error at `threshold_quantile` stored in the checkpoint, scaled up for a noisier slice.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from ..config import IterMaskConfig, Thresholds, U2ADConfig
from ..errors import CheckpointError
from .base import MethodMaps

PathLike = Union[str, Path]
Reconstructor = Callable[[torch.Tensor], torch.Tensor]  # mask [1, 1, H, W] bool -> reconstruction [1, 1, H, W]
ErrorFn = Callable[[torch.Tensor], torch.Tensor]  # reconstruction -> per-pixel error [1, 1, H, W]


@dataclass
class Refinement:
    """One slice's refinement. recon/error/mask are [H, W] (the last round); `masked_fraction`
    is the hidden share of the cord before each round; `converged` is False when max_iters ended it."""

    recon: np.ndarray
    error: np.ndarray
    mask: np.ndarray
    threshold: float
    masked_fraction: list[float]
    converged: bool

    @property
    def rounds(self) -> int:
        return len(self.masked_fraction)


@torch.no_grad()
def refine(reconstruct: Reconstructor, error_of: ErrorFn, roi: torch.Tensor, threshold: float,
           step_fraction: float, max_iters: int) -> Refinement:
    """The refinement loop over any reconstructor (the network, or a stand-in in tests)."""
    mask = roi.clone()
    n_roi = max(int(roi.sum()), 1)
    cap = max(1, math.ceil(step_fraction * n_roi))
    fractions: list[float] = []
    converged = False
    for _ in range(max_iters):
        recon = reconstruct(mask)
        err = error_of(recon)
        fractions.append(float(mask.sum()) / n_roi)
        low = mask & (err <= threshold)
        n_low = int(low.sum())
        if n_low == 0:
            converged = True
            break
        if n_low > cap:  # the `cap` lowest errors among the candidates (ties in pixel order)
            idx = torch.nonzero(low.flatten()).squeeze(1)
            keep = idx[torch.argsort(err.flatten()[idx], stable=True)[:cap]]
            low = torch.zeros_like(low.flatten()).index_fill_(0, keep, True).view_as(low)
        mask = mask & ~low
    else:
        recon = reconstruct(mask)
        err = error_of(recon)
    return Refinement(recon=recon[0, 0].cpu().numpy(), error=err[0, 0].cpu().numpy(), mask=mask[0, 0].cpu().numpy(),
                      threshold=float(threshold), masked_fraction=fractions, converged=converged)


def subject_threshold(tau: float, noise: float, normal_noise: float, scale_max: float) -> float:
    """The healthy threshold scaled by how much noisier this slice is than healthy data (never below it)."""
    ratio = noise / normal_noise if normal_noise > 0 else 1.0
    return float(tau * np.clip(ratio, 1.0, scale_max))


class IterMaskMethod:
    """methods/base.Method. `checkpoint` None means the shipped IterMask model.

    residual = x - reconstruction of the last round inside the cord (0 outside it), error = |residual|;
    `itermask` overrides the refinement settings stored in the checkpoint.
    """

    name = "itermask"
    thresholds: Optional[Thresholds] = None

    def __init__(self, config: U2ADConfig, checkpoint: Optional[PathLike] = None, itermask: Optional[IterMaskConfig] = None):
        from ..resources import itermask_model_path
        from ..training.distributed import resolve_device
        from ..training.itermask import load_itermask

        path = Path(checkpoint) if checkpoint is not None else itermask_model_path()
        if checkpoint is None and not path.is_file():
            raise CheckpointError(f"{path}: the shipped IterMask model is missing from this installation; pass one with --model")
        self.loaded = load_itermask(path, resolve_device(config.inference.device))
        trained = self.loaded.net.cfg
        self.cfg = itermask if itermask is not None else trained
        if (self.cfg.channels, self.cfg.hf_sigma_mm) != (trained.channels, trained.hf_sigma_mm):
            raise CheckpointError(f"{path}: the network's channels and high-frequency filter are fixed by training")
        tp = self.loaded.config.preprocess
        if (tp.size, tp.spacing_mm) != (config.preprocess.size, config.preprocess.spacing_mm):
            raise CheckpointError(
                f"{path}: IterMask was trained on a {tp.size}-pixel grid at {tp.spacing_mm} mm, "
                f"detection is set to {config.preprocess.size} pixels at {config.preprocess.spacing_mm} mm"
            )
        self.last: list[Refinement] = []  # the refinements of the latest maps() call, for reports and benchmarks

    def refine_slice(self, image: np.ndarray, roi: np.ndarray) -> Refinement:
        """Refinement of one prepared slice [H, W]; results on the full grid."""
        from ..training.itermask import band_columns, noise_level, normal_threshold, pixel_error

        net, cfg, stats = self.loaded.net, self.cfg, self.loaded.normal_stats
        device = next(net.parameters()).device
        cols = band_columns(roi, cfg.band_px, net.multiple)
        x = torch.from_numpy(np.ascontiguousarray(image[:, cols], dtype=np.float32))[None, None].to(device)
        r = torch.from_numpy(np.ascontiguousarray(roi[:, cols]))[None, None].to(device)
        tau = subject_threshold(normal_threshold(stats, cfg), noise_level(x, r, cfg, net.spacing_mm), stats["noise"],
                                cfg.noise_scale_max)
        result = refine(lambda m: net.reconstruct(x, m), lambda rec: pixel_error(x, rec, r, cfg, net.spacing_mm),
                        r, tau, cfg.step_fraction, cfg.max_iters)
        full = {k: np.zeros(image.shape, np.float32) for k in ("recon", "error")}
        full["recon"][:] = image
        full["recon"][:, cols] = np.where(roi[:, cols], result.recon, image[:, cols])
        full["error"][:, cols] = result.error
        mask = np.zeros(roi.shape, bool)
        mask[:, cols] = result.mask
        return dataclasses.replace(result, recon=full["recon"], error=full["error"], mask=mask)

    def maps(self, slices) -> list[MethodMaps]:
        self.last = [self.refine_slice(s.image, s.roi) for s in slices]
        out = []
        for s, r in zip(slices, self.last):
            residual = np.where(s.roi, s.image - r.recon, 0.0).astype(np.float32)
            out.append(MethodMaps(error=np.abs(residual), recon=r.recon, residual=residual))
        return out

    def describe(self) -> dict:
        return {"method": self.name, "model_path": str(self.loaded.path), "sha256": self.loaded.sha256,
                "itermask": dataclasses.asdict(self.cfg), "normal_stats": self.loaded.normal_stats,
                "training_data": self.loaded.training_data}
