"""IterMask's test-time mask refinement applied to U2AD's Monte-Carlo inference (docs/ITERMASK.md).

Round 0 is the usual Monte-Carlo inference. Its residual x - mu, averaged per ROI patch (the
hyperintense part), sets a per-slice threshold tau = median + k x 1.4826 x MAD over the ROI
patches: the slice's own, mostly healthy, patches are its normal reference. Patches at or below
tau are declared normal and stay visible from then on. Each later round hides all still-suspect
patches together in one pass (as IterMask does: a lesion spread over several patches must not
see its own visible parts) and replaces their mu with that reconstruction, which now has every
normal neighbour as context; patches that fall to tau or below join the normal ones. The set of
suspect patches never grows. EU stays that of round 0 (the later rounds are single passes).
"""
from __future__ import annotations

import numpy as np
import torch

from ..model.patches import patch_to_pixels, patchify, roi_patches
from .montecarlo import MCResult, mc_inference


def patch_residual(x: torch.Tensor, mu: torch.Tensor, roi: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, L]: mean of max(x - mu, 0) over the ROI pixels of each patch (0 for patches without ROI)."""
    w = patchify(roi.float(), patch_size)
    r = patchify((x - mu).clamp(min=0.0), patch_size)
    return (r * w).sum(-1) / w.sum(-1).clamp(min=1.0)


def robust_threshold(scores: torch.Tensor, roi_p: torch.Tensor, k: float) -> torch.Tensor:
    """[B]: median + k * 1.4826 * MAD of each image's ROI-patch scores."""
    out = torch.zeros(scores.shape[0], dtype=scores.dtype, device=scores.device)
    for b in range(scores.shape[0]):
        s = scores[b][roi_p[b]]
        if s.numel():
            med = s.median()
            out[b] = med + k * 1.4826 * (s - med).abs().median()
    return out


@torch.no_grad()
def refined_mc_inference(model: torch.nn.Module, images, roi, *, rounds: int, mad_k: float, **mc_kwargs) -> tuple[MCResult, np.ndarray]:
    """Monte-Carlo inference plus up to `rounds` refinement rounds. Returns the result (mu and AU
    of the last round) and the suspect patches at the end, bool [B, L]."""
    mc = mc_inference(model, images, roi, **mc_kwargs)
    device = next(model.parameters()).device
    p = model.cfg.patch_size
    x = torch.as_tensor(images, dtype=torch.float32).to(device)
    roi_t = torch.as_tensor(roi).to(device).bool()
    roi_p = roi_patches(roi_t, p)
    mu = torch.from_numpy(mc.mu).to(device)[:, None]
    scores = patch_residual(x, mu, roi_t, p)
    tau = robust_threshold(scores, roi_p, mad_k)[:, None]
    suspect = roi_p & (scores > tau)
    was_training = model.training
    model.eval()
    try:
        for _ in range(rounds):
            if not bool(suspect.any()):
                break
            out = model(x, roi_p, suspect, roi=roi_t).image.float()
            hidden = patch_to_pixels(suspect, p)
            mu = torch.where(hidden, out, mu)
            still = suspect & (patch_residual(x, mu, roi_t, p) > tau)
            if torch.equal(still, suspect):
                break
            suspect = still
    finally:
        model.train(was_training)
    mu_np = mu[:, 0].cpu().numpy()
    x_np = x[:, 0].cpu().numpy()
    inside = patch_to_pixels(roi_p, p)[:, 0].cpu().numpy()
    au = np.where(inside, np.abs(x_np - mu_np), 0.0).astype(np.float32)
    return MCResult(mu=mu_np, eu=mc.eu, au=au, n_passes=mc.n_passes), suspect.cpu().numpy()
