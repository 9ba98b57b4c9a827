"""Training IterMask's network (docs/ITERMASK.md) with the project's loop, its checkpoint format
("u2ad-itermask") and the healthy-data error statistics its refinement stops on.

- Slices are cut to a band `band_px` wide (A-P) centred on the cord: the network is fully
  convolutional, the cord is narrow, and a 256 x 64 band costs a quarter of the full grid.
- Masks are drawn in pixels: the whole cord (what detection starts from) with probability
  `full_mask_prob`, else smooth random blobs covering 10-90 % of the cord (the partly unmasked
  states the refinement passes through).
- After training, the network reconstructs healthy training slices under the same kinds of
  masks; quantiles of the error of masked cord pixels, and the slices' noise level, are stored
  in the checkpoint: the refinement's threshold is derived from them.
"""
from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..config import IterMaskConfig, U2ADConfig, from_dict, to_dict
from ..errors import CheckpointError, InputError
from ..io.atomic import atomic_path
from ..model.itermask import IterMaskNet, high_frequency, masked_blur
from ..progress import CancelToken, ProgressCallback
from .checkpoint import file_sha256, load_payload
from .distributed import DistContext
from .loop import History, ModelFamily, RunInfo, train
from .slices_data import SliceArrays

FORMAT = "u2ad-itermask"
FORMAT_VERSION = 1
PathLike = Union[str, Path]
# Quantiles of healthy masked-pixel error stored in the checkpoint; detection interpolates
# IterMaskConfig.threshold_quantile between them.
QUANTILES = (0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999)
# Intensity-noise variance of the augmentation for IterMask. EdgeMAE's 0.02 (sigma 0.14) is ten
# times the real in-cord noise and would bury the high-frequency input.
NOISE_VAR = 0.001


# -- geometry ---------------------------------------------------------------------------------
def band_columns(roi: np.ndarray, width: int, multiple: int) -> slice:
    """Columns of a band at least `width` wide (a multiple of `multiple`) centred on the cord of
    `roi` [H, W]; widened to hold the whole cord plus 8 px either side when it is wider."""
    w_total = roi.shape[-1]
    cols = np.flatnonzero(roi.any(axis=0))
    if cols.size == 0:
        centre, span = w_total // 2, 0
    else:
        centre, span = int(round((cols[0] + cols[-1]) / 2)), int(cols[-1] - cols[0] + 1)
    w = max(width, span + 16)
    w = min(int(np.ceil(w / multiple) * multiple), w_total - w_total % multiple)
    start = int(np.clip(centre - w // 2, 0, w_total - w))
    return slice(start, start + w)


def crop_band(data: SliceArrays, width: int) -> SliceArrays:
    """Every slice cut to `width` columns centred on its cord (cord outside the band is dropped)."""
    images, roi = [], []
    for img, r in zip(data.images, data.roi):
        cols = band_columns(r[0], width, 1)
        cols = slice(cols.start, cols.start + width)
        images.append(img[..., cols])
        roi.append(r[..., cols])
    return SliceArrays(np.stack(images), np.stack(roi), list(data.meta))


# -- masks ------------------------------------------------------------------------------------
def blob_masks(roi: torch.Tensor, generator: torch.Generator, full_prob: float) -> torch.Tensor:
    """[B, 1, H, W] bool masks inside `roi`: the whole cord with probability `full_prob`, else a
    thresholded smooth random field (blob scale 4-16 px) hiding 10-90 % of the cord."""
    b, _, h, w = roi.shape
    full = torch.rand(b, generator=generator) < full_prob
    scales = 2 ** torch.randint(2, 5, (b,), generator=generator)
    fractions = 0.1 + 0.8 * torch.rand(b, generator=generator)
    out = []
    for i in range(b):
        s = int(scales[i])
        coarse = torch.rand(1, 1, h // s + 2, w // s + 2, generator=generator)
        field = F.interpolate(coarse, scale_factor=s, mode="bilinear", align_corners=False)[..., :h, :w]
        inside = field[roi[i : i + 1]]
        if full[i] or inside.numel() == 0:
            out.append(roi[i])
            continue
        out.append((field[0] <= torch.quantile(inside, float(fractions[i]))) & roi[i])
    return torch.stack(out)


@dataclass(frozen=True)
class BlobMasking:
    """The loop's MaskStrategy for IterMask: pixel masks on band-shaped slices."""

    shape: tuple[int, int]
    full_prob: float
    name: str = "itermask"

    def __call__(self, indices: torch.Tensor, roi_pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        roi = roi_pixels.reshape(-1, 1, *self.shape).cpu()
        return blob_masks(roi, generator, self.full_prob).reshape(roi_pixels.shape).to(roi_pixels.device)


# -- errors and normal statistics ---------------------------------------------------------------
def pixel_error(x: torch.Tensor, recon: torch.Tensor, roi: torch.Tensor, cfg: IterMaskConfig, spacing_mm: float) -> torch.Tensor:
    """The error the refinement thresholds: (x - recon), its positive part when
    `hyperintense_only`, else its magnitude, averaged over the cord within error_smooth_mm."""
    d = x - recon
    d = d.clamp(min=0.0) if cfg.hyperintense_only else d.abs()
    return masked_blur(d, roi, cfg.error_smooth_mm / spacing_mm)


def noise_level(x: torch.Tensor, roi: torch.Tensor, cfg: IterMaskConfig, spacing_mm: float) -> float:
    """Robust noise estimate of one slice [1, 1, H, W]: 1.4826 x MAD of the high frequency inside
    the cord eroded by one pixel (the cord border is edge, not noise)."""
    inner = -F.max_pool2d(-roi.float(), 3, stride=1, padding=1) > 0
    if not bool(inner.any()):
        inner = roi
    hf = high_frequency(x, cfg.hf_sigma_mm / spacing_mm)[inner]
    if hf.numel() == 0:
        return 0.0
    return float(1.4826 * (hf - hf.median()).abs().median())


@torch.no_grad()
def normal_statistics(net: IterMaskNet, data: SliceArrays, max_slices: int = 64, seed: int = 0) -> dict:
    """Error quantiles of masked healthy cord pixels (whole-cord mask and one blob mask per slice),
    for hyperintense-only and absolute error, and the median slice noise level."""
    cfg = net.cfg
    net = net.eval()
    rng = torch.Generator().manual_seed(seed)
    picks = np.unique(np.linspace(0, len(data) - 1, min(max_slices, len(data))).round().astype(int))
    errors = {"hyper": [], "abs": []}
    noise = []
    device = next(net.parameters()).device
    for i in picks:
        x = torch.from_numpy(data.images[i : i + 1]).to(device)
        roi = torch.from_numpy(data.roi[i : i + 1]).to(device)
        noise.append(noise_level(x, roi, cfg, net.spacing_mm))
        for mask in (roi, blob_masks(roi.cpu(), rng, 0.0).to(device)):
            recon = net.reconstruct(x, mask)
            for key, hyper in (("hyper", True), ("abs", False)):
                e = pixel_error(x, recon, roi, dataclasses.replace(cfg, hyperintense_only=hyper), net.spacing_mm)
                errors[key].append(e[mask].cpu().numpy())
    table = {key: [float(q) for q in np.quantile(np.concatenate(v), QUANTILES)] for key, v in errors.items()}
    return {"quantiles": list(QUANTILES), **table, "noise": float(np.median(noise)), "n_slices": int(len(picks))}


def normal_threshold(stats: dict, cfg: IterMaskConfig) -> float:
    """tau: the healthy error at cfg.threshold_quantile (interpolated in the stored table)."""
    table = stats["hyper" if cfg.hyperintense_only else "abs"]
    q = float(np.clip(cfg.threshold_quantile, stats["quantiles"][0], stats["quantiles"][-1]))
    return float(np.interp(q, stats["quantiles"], table))


# -- checkpoint -----------------------------------------------------------------------------------
def save_itermask(path: PathLike, model: IterMaskNet, config: U2ADConfig, *, training_data: dict,
                  meta: Optional[dict] = None, train_state: Optional[dict] = None, normal_stats: Optional[dict] = None) -> None:
    """Write atomically; plain types and tensors only (readable with weights_only)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "config": to_dict(config),
        "itermask": to_dict(model.cfg),
        "spacing_mm": model.spacing_mm,
        "weights": {k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()},
        "normal_stats": normal_stats,
        "training_data": training_data,
        "meta": {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **(meta or {})},
        "train_state": train_state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_itermask(path: PathLike) -> dict:
    payload = load_payload(path, FORMAT, FORMAT_VERSION, "IterMask")
    missing = sorted({"config", "itermask", "spacing_mm", "weights", "normal_stats", "training_data", "meta", "train_state"} - set(payload))
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return payload


def build_itermask(payload: dict, path: PathLike) -> IterMaskNet:
    try:
        net = IterMaskNet(from_dict(IterMaskConfig, payload["itermask"]), spacing_mm=float(payload["spacing_mm"]))
        net.load_state_dict(payload["weights"], strict=True)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: IterMask checkpoint does not fit this version of u2adcore ({exc})") from exc
    return net.eval()


ITERMASK = ModelFamily(save=save_itermask, read=read_itermask, build=build_itermask)


@dataclass
class LoadedIterMask:
    net: IterMaskNet  # eval mode
    config: U2ADConfig  # as trained (preprocess, train)
    normal_stats: dict
    training_data: dict
    meta: dict
    sha256: str
    path: Path


def load_itermask(path: PathLike, device: Union[str, torch.device] = "cpu") -> LoadedIterMask:
    """A finished IterMask checkpoint; CheckpointError naming the file otherwise."""
    path = Path(path)
    payload = read_itermask(path)
    if payload["normal_stats"] is None:
        raise CheckpointError(f"{path}: training did not finish (no healthy-error statistics); continue it with "
                              "`u2ad pretrain --method itermask --resume`")
    net = build_itermask(payload, path).to(device)
    try:
        config = from_dict(U2ADConfig, payload["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its settings do not fit this version of u2adcore ({exc})") from exc
    return LoadedIterMask(net=net, config=config, normal_stats=payload["normal_stats"], training_data=payload["training_data"],
                          meta={"package_version": payload["package_version"], **payload["meta"]},
                          sha256=file_sha256(path), path=path)


# -- pretraining ----------------------------------------------------------------------------------
def pretrain_itermask(
    data: SliceArrays,
    sources: Sequence,
    cfg: U2ADConfig,
    itermask: IterMaskConfig,
    out: Path,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    resume: bool = False,
    ctx: Optional[DistContext] = None,
    ship: bool = False,
) -> tuple[IterMaskNet, History]:
    """Train a fresh IterMask network (seeded by cfg.train.seed) on healthy `data` and write `out`:
    resumable while training, finished with the healthy-error statistics; `ship` drops the
    optimizer state (what the package ships)."""
    if not len(data):
        raise InputError(None, "the training set is empty (no slice with cord in its mask)")
    torch.manual_seed(cfg.train.seed)
    net = IterMaskNet(itermask, spacing_mm=cfg.preprocess.spacing_mm)
    if itermask.band_px % net.multiple or cfg.preprocess.size % net.multiple:
        raise InputError(None, f"IterMask's band ({itermask.band_px} px) and grid ({cfg.preprocess.size} px) must be "
                               f"multiples of {net.multiple} (one halving per U-Net level)")
    band = crop_band(data, itermask.band_px)
    training_data = {**data.summary(), "sources": [s.record() for s in sources]}
    run_info = RunInfo(cfg, training_data, {"task": "pretrain", "method": "itermask"})
    history = train(net, band, cfg.train, strategy=BlobMasking(band.images.shape[-2:], itermask.full_mask_prob),
                    progress=progress, cancel=cancel, checkpoint_path=out, resume=resume, run_info=run_info, ctx=ctx,
                    task="pretrain", family=ITERMASK)
    if ctx is None or ctx.is_main:
        payload = read_itermask(out)
        payload["normal_stats"] = normal_statistics(net.cpu(), band, seed=cfg.train.seed)
        payload["meta"]["final_loss"] = history.losses[-1] if history.losses else None
        if ship:
            payload["train_state"] = None
        with atomic_path(out) as tmp:
            torch.save(payload, tmp)
    return net.eval(), history
