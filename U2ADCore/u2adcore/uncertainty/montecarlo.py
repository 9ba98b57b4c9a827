"""Monte-Carlo inference (METHOD.md §4, the paper's Algorithm 1).

Every ROI patch is reconstructed exactly K times under different masks; per pixel the mean
reconstruction μ, the epistemic uncertainty EU (variance of the K reconstructions) and the
aleatoric uncertainty AU = |x − μ| follow. The passes of all images are stacked into big
batches (one forward call each), which is where the speed over the research code comes from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from ..model.patches import patchify, roi_patches, unpatchify
from ..progress import CancelToken
from .schedules import Schedule, make_plan

ArrayLike = Union[np.ndarray, torch.Tensor]


@dataclass
class MCResult:
    """Per-pixel maps, float32 [B, H, W]; outside ROI patches μ = x and EU = AU = 0.

    EU is the population variance (ddof 0) of the K reconstructions, as in the research code.
    `n_passes` [B] counts the forward passes each image took.
    """

    mu: np.ndarray
    eu: np.ndarray
    au: np.ndarray
    n_passes: np.ndarray


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def mc_inference(
    model: torch.nn.Module,
    images: ArrayLike,
    roi: ArrayLike,
    *,
    K: int = 10,
    schedule: Schedule = "balanced",
    seed: int = 0,
    batch_size: int = 32,
    mask_ratio: Optional[float] = None,
    cancel: Optional[CancelToken] = None,
) -> MCResult:
    """μ, EU and AU of `images` [B, 1, H, W] in [0, 1] with ROI `roi` [B, 1, H, W] (bool).

    The masks depend only on `seed` (and the ROI), so a run is reproducible. Sums are taken of
    the reconstruction minus the input, which keeps float32 accurate for the small variances.
    The model is put in eval mode for the call and given back in the mode it was in.
    `mask_ratio` None hides the model's training ratio of cord patches per pass; another ratio
    (InferenceConfig.mask_ratio) always leaves at least one cord patch visible.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if mask_ratio is not None and not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"the inference mask ratio must lie strictly between 0 and 1, got {mask_ratio}")
    device = _model_device(model)
    x = torch.as_tensor(images, dtype=torch.float32).to(device)
    roi_t = torch.as_tensor(roi).to(device).bool()
    if x.ndim != 4 or x.shape[1] != 1 or roi_t.shape != x.shape:
        raise ValueError(f"mc_inference expects images and roi of shape [B, 1, H, W], got {tuple(x.shape)} and {tuple(roi_t.shape)}")
    p = model.cfg.patch_size
    n_images = x.shape[0]
    roi_p = roi_patches(roi_t, p)
    ratio = model.cfg.mask_ratio if mask_ratio is None else mask_ratio
    plan = make_plan(roi_p.cpu().numpy(), ratio, K, schedule, np.random.default_rng(seed), keep_visible=mask_ratio is not None)
    x_p = patchify(x, p)
    d_sum = torch.zeros_like(x_p)
    d_sq = torch.zeros_like(x_p)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, plan.n_passes, batch_size):
            if cancel is not None:
                cancel.check()
            idx = torch.as_tensor(plan.image[start : start + batch_size], device=device)
            mask = torch.as_tensor(plan.mask[start : start + batch_size], device=device)
            counted = torch.as_tensor(plan.counted[start : start + batch_size], device=device)
            out = model(x[idx], roi_p[idx], mask, roi=roi_t[idx])
            d = (patchify(out.image.float(), p) - x_p[idx]) * counted[..., None]
            d_sum.index_add_(0, idx, d)
            d_sq.index_add_(0, idx, d * d)
    finally:
        model.train(was_training)
    mean_d = d_sum / K
    var = (d_sq / K - mean_d * mean_d).clamp_min(0.0)
    mu = unpatchify(x_p + mean_d, p)[:, 0]
    eu = unpatchify(var, p)[:, 0]
    au = unpatchify(mean_d.abs(), p)[:, 0]
    return MCResult(
        mu=mu.cpu().numpy(),
        eu=eu.cpu().numpy(),
        au=au.cpu().numpy(),
        n_passes=plan.passes_per_image(n_images),
    )
