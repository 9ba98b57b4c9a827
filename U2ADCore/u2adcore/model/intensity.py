"""Intensity standardisation from the visible cord: what makes studies comparable to the network.

Each study's [0, 1] scale comes from its own percentiles, and a coil's sensitivity varies along the
spine, so the cord lies at a different level in every study and at every height of one study. The
network therefore sees x divided by a level estimated from the *visible* (unmasked) cord pixels only,
so the masked pixels it must reconstruct never leak in:

- `visible_cord`: one level per image, the median of the visible cord pixels;
- `visible_profile`: one level per image row (the cord runs top to bottom in a sagittal slice), the
  running median along the rows of the visible pixels of the cord eroded by `erode` pixels. The
  erosion keeps the partial-volume ring (brighter or darker than the cord, depending on how much CSF
  it holds) out of the estimate; the running median follows a bias field along the spine and
  ignores a bright lesion over less than half of its window. docs/MODEL.md measures both.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FLOOR = 1e-3  # no level below this: an all-dark visible cord must not blow the input up


_CROSS = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]).reshape(1, 1, 3, 3)


def erode(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """[B, 1, H, W] bool mask eroded `pixels` times by the 4-connected cross, as
    `scoring.maps.analysis_roi` erodes the cord that is scored."""
    out = mask
    for _ in range(pixels):
        beyond = F.pad((~out).float(), (1, 1, 1, 1), value=1.0)  # the image's border erodes, as in scipy
        outside = F.conv2d(beyond, _CROSS.to(mask.device)) > 0
        out = out & ~outside
    return out


def median_over(x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """[B, 1, 1, 1] median of x over `where` per image (1 where empty); computed inside the
    batch's bounding box of `where`, which is a few percent of the image for a cord."""
    rows, cols = where.flatten(0, 1).any(0).any(1), where.flatten(0, 1).any(0).any(0)
    if bool(rows.any()):
        r, c = rows.nonzero()[:, 0], cols.nonzero()[:, 0]
        box = (..., slice(int(r[0]), int(r[-1]) + 1), slice(int(c[0]), int(c[-1]) + 1))
        x, where = x[box], where[box]
    vals = torch.where(where, x.float(), torch.full_like(x, float("nan"), dtype=torch.float32)).flatten(1)
    return vals.nanmedian(dim=1).values.nan_to_num(1.0).clamp_min(FLOOR).reshape(-1, 1, 1, 1)


def _fill_rows(levels: np.ndarray) -> np.ndarray:
    """Rows without a level take the linear interpolation of their neighbours (constant beyond the
    ends); an image without any level gets 1."""
    out = np.empty_like(levels)
    rows = np.arange(levels.shape[1])
    for i, lv in enumerate(levels):
        ok = np.isfinite(lv)
        out[i] = np.interp(rows, rows[ok], lv[ok]) if ok.any() else 1.0
    return out


def row_profile(x: torch.Tensor, where: torch.Tensor, window: int) -> torch.Tensor:
    """[B, 1, H, 1] per row, the median of x over the `where` pixels of the rows within ±`window`.

    Vectorised over the batch: each row's pixels in the cord's column range are gathered into a
    window of rows, the pixels outside `where` set to NaN, and nanmedian taken over the window.
    """
    b, _, h, w = x.shape
    any_row, any_col = where.flatten(0, 1).any(0).any(1), where.flatten(0, 1).any(0).any(0)
    if not bool(any_row.any()):
        return torch.ones(b, 1, h, 1, dtype=x.dtype, device=x.device)
    r, c = any_row.nonzero()[:, 0], any_col.nonzero()[:, 0]
    r0, r1 = max(int(r[0]) - window, 0), min(int(r[-1]) + window + 1, h)  # rows beyond hold no window
    box = (slice(None), 0, slice(r0, r1), slice(int(c[0]), int(c[-1]) + 1))
    vals = torch.where(where[box], x[box].float(), torch.tensor(float("nan")))  # [B, R, C]
    padded = F.pad(vals.transpose(1, 2), (window, window), value=float("nan")).transpose(1, 2)  # [B, R + 2w, C]
    windows = padded.unfold(1, 2 * window + 1, 1)  # [B, R, C, 2w + 1]
    med = torch.full((b, h), float("nan"))
    med[:, r0:r1] = windows.flatten(2).nanmedian(dim=2).values.cpu()
    filled = torch.as_tensor(_fill_rows(med.numpy()), dtype=torch.float32, device=x.device)
    return filled.clamp_min(FLOOR).to(x.dtype)[:, None, :, None]


def visible_core(roi: torch.Tensor, masked_pixels: torch.Tensor, pixels: int) -> torch.Tensor:
    """[B, 1, H, W] the unmasked pixels of the cord eroded by `pixels`, per image falling back to the
    unmasked cord (a cord too thin to erode) and then to the whole cord (nothing visible)."""
    roi = roi.bool()
    out = erode(roi, pixels) & ~masked_pixels
    for fallback in (roi & ~masked_pixels, roi):
        empty = ~out.flatten(1).any(1)
        out = torch.where(empty[:, None, None, None], fallback, out)
    return out
