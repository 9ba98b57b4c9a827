"""EdgeMAE (METHOD.md §3): a ViT masked autoencoder with image and Sobel-edge heads.

Tokens are chosen per image: the encoder sees the visible patches of the image's token set
(the whole grid, or the context band around the cord when `ModelConfig.context_band` is set),
the decoder sees the whole token set with a learnable mask token in the hidden places. Counts
differ between images, so tokens are gathered, padded to the batch maximum and padding is
excluded through the attention mask. Patches outside the token set are returned as the input
pixels (they are never masked and never in the loss).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from .patches import dilate_patches, grid_size, patch_to_pixels, patchify, select_tokens, unpatchify
from .intensity import median_over, row_profile, visible_core
from .pos_embed import sincos_2d

_SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of [B, 1, H, W], clipped to [0, 1]: the edge head's target."""
    kx = _SOBEL_X.to(device=x.device, dtype=x.dtype).reshape(1, 1, 3, 3)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx)
    gy = F.conv2d(padded, kx.transpose(2, 3))
    return torch.sqrt(gx * gx + gy * gy).clamp(0.0, 1.0)


@dataclass
class EdgeMAEOutput:
    """Reconstructions on the full grid, [B, 1, H, W] each, in the input's dtype."""

    image: torch.Tensor
    edge: torch.Tensor


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))


def _key_mask(valid: torch.Tensor) -> Optional[torch.Tensor]:
    """SDPA mask [B, 1, 1, 1+T] (True = may be attended) for a class token plus padded tokens;
    None when nothing is padded, which keeps the fast fused kernels."""
    if bool(valid.all()):
        return None
    cls = torch.ones_like(valid[:, :1])
    return torch.cat([cls, valid], dim=1)[:, None, None, :]


def _scatter_rows(base: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """base [B, L, D] with rows [B, T, D] written at ids; padded entries go to a dropped spare row."""
    b, n, d = base.shape
    target = torch.where(valid, ids, torch.full_like(ids, n))
    spare = torch.cat([base, base.new_zeros(b, 1, d)], dim=1)
    return spare.scatter(1, target[..., None].expand(-1, -1, d), rows.to(base.dtype))[:, :n]


def _gather_rows(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return x.gather(1, ids[..., None].expand(-1, -1, x.shape[-1]))


class EdgeMAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        p = cfg.patch_size
        self.grid = grid_size(cfg.img_size, p)
        patch_dim = p * p * cfg.in_chans
        self.patch_embed = nn.Linear(patch_dim, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.decoder_embed = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(cfg.decoder_embed_dim, cfg.decoder_num_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(cfg.decoder_embed_dim)
        self.image_head = nn.Linear(cfg.decoder_embed_dim, patch_dim)
        self.edge_head = nn.Linear(cfg.decoder_embed_dim, patch_dim)
        # Fixed, so not saved: they follow from the config alone.
        self.register_buffer("pos_embed", sincos_2d(cfg.embed_dim, self.grid), persistent=False)
        self.register_buffer("decoder_pos_embed", sincos_2d(cfg.decoder_embed_dim, self.grid), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE's initialisation: xavier-uniform linears, N(0, 0.02) tokens, unit LayerNorms."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    def token_patches(self, roi_patches: torch.Tensor) -> torch.Tensor:
        """[B, L] bool: the patches the model looks at (all, or the context band around the ROI)."""
        if self.cfg.context_band is None:
            return torch.ones_like(roi_patches)
        return dilate_patches(roi_patches, self.cfg.context_band)

    def _visible(self, roi: Optional[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] the unmasked cord pixels the intensity level is estimated from."""
        if roi is None:
            raise ValueError("this model normalises by the visible cord: pass the pixel cord mask (roi=)")
        erode_px = self.cfg.norm_erode if self.cfg.intensity_norm == "visible_profile" else 0
        return visible_core(roi, patch_to_pixels(mask, self.cfg.patch_size), erode_px)

    def _level(self, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """The cord level of x on the `visible` pixels: [B, 1, 1, 1] (`visible_cord`) or one per
        row [B, 1, H, 1] (`visible_profile`); model/intensity.py says why."""
        if self.cfg.intensity_norm == "visible_profile":
            return row_profile(x, visible, self.cfg.norm_window)
        return median_over(x, visible)

    def intensity_scale(self, x: torch.Tensor, roi: Optional[torch.Tensor], mask: torch.Tensor) -> Optional[torch.Tensor]:
        """Factor (per image, or per image row) that brings the visible cord's level to `norm_level`
        (None: no normalisation). Only unmasked cord pixels count, so the masked ones never leak in."""
        if self.cfg.intensity_norm is None:
            return None
        return (self.cfg.norm_level / self._level(x, self._visible(roi, mask))).to(x.dtype)

    def forward(self, x: torch.Tensor, roi_patches: torch.Tensor, mask: torch.Tensor,
                roi: Optional[torch.Tensor] = None) -> EdgeMAEOutput:
        """x [B, C, H, W] in [0, 1]; roi_patches, mask [B, L] bool (mask must lie inside the ROI);
        roi [B, 1, H, W] the pixel cord, needed only by models with `intensity_norm`."""
        if bool((mask & ~roi_patches).any()):
            raise ValueError("mask hides patches outside the ROI; only ROI patches may be masked")
        scale = self.intensity_scale(x, roi, mask)
        if scale is not None:
            out = self._forward(x * scale, roi_patches, mask)
            image, edge = out.image / scale, out.edge / scale
            if self.cfg.anchor_visible and not self.training:  # a test-time calibration; training sees the raw output
                visible = self._visible(roi, mask)
                ratio = (self._level(x, visible) / self._level(image, visible)).to(image.dtype)
                image = torch.where(patch_to_pixels(self.token_patches(roi_patches), self.cfg.patch_size), image * ratio, image)
            return EdgeMAEOutput(image=image.clamp(0.0, 1.0), edge=edge.clamp(0.0, 1.0))
        return self._forward(x, roi_patches, mask)

    def _forward(self, x: torch.Tensor, roi_patches: torch.Tensor, mask: torch.Tensor) -> EdgeMAEOutput:
        p, b = self.cfg.patch_size, x.shape[0]
        patches = patchify(x, p)
        tokens = self.token_patches(roi_patches)

        enc_ids, enc_valid = select_tokens(tokens & ~mask)
        h = self.patch_embed(_gather_rows(patches, enc_ids)) + self.pos_embed[enc_ids]
        h = torch.cat([self.cls_token.expand(b, -1, -1).to(h.dtype), h], dim=1)
        enc_mask = _key_mask(enc_valid)
        for blk in self.blocks:
            h = blk(h, enc_mask)
        h = self.decoder_embed(self.norm(h))

        canvas = self.mask_token.expand(b, self.num_patches, -1)
        canvas = _scatter_rows(canvas, enc_ids, enc_valid, h[:, 1:])
        dec_ids, dec_valid = select_tokens(tokens)
        d = _gather_rows(canvas, dec_ids) + self.decoder_pos_embed[dec_ids]
        d = torch.cat([h[:, :1].to(d.dtype), d], dim=1)
        dec_mask = _key_mask(dec_valid)
        for blk in self.decoder_blocks:
            d = blk(d, dec_mask)
        d = self.decoder_norm(d)[:, 1:]

        image = _scatter_rows(patches, dec_ids, dec_valid, torch.sigmoid(self.image_head(d)))
        edge = _scatter_rows(patchify(sobel_magnitude(x), p), dec_ids, dec_valid, torch.sigmoid(self.edge_head(d)))
        c = self.cfg.in_chans
        return EdgeMAEOutput(image=unpatchify(image, p, c), edge=unpatchify(edge, p, c))

    def loss_weights(self, roi: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] float: 1 on ROI pixels of masked patches, the only pixels in the loss (the
        ROI eroded by `loss_erode` pixels where it survives: the edge ring is never scored)."""
        core = visible_core(roi, torch.zeros_like(roi, dtype=torch.bool), self.cfg.loss_erode)
        return (core & patch_to_pixels(mask, self.cfg.patch_size)).to(torch.float32)

    def loss(
        self,
        x: torch.Tensor,
        roi: torch.Tensor,
        out: EdgeMAEOutput,
        mask: torch.Tensor,
        *,
        denominator: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """MSE(image) + edge_weight * MSE(edge) over ROI pixels of masked patches; 0 if there are none.

        `denominator` (the number of such pixels) defaults to this batch's; distributed training
        passes the global batch's so that N processes reproduce one process exactly.
        """
        w = self.loss_weights(roi, mask)
        denom = (w.sum() if denominator is None else denominator).clamp(min=1.0)
        image_term = ((out.image.float() - x.float()) ** 2 * w).sum() / denom
        edge_term = ((out.edge.float() - sobel_magnitude(x.float())) ** 2 * w).sum() / denom
        return image_term + self.cfg.edge_weight * edge_term
