"""Denoising-autoencoder baseline (METHOD.md §9): a small convolutional autoencoder trained to
remove Gaussian noise from healthy slices, so that at test time it "repairs" what it has not seen.

It is trained on the same slices, with the same augmentation, optimiser and learning-rate
schedule (TrainConfig) as EdgeMAE and, like EdgeMAE, with the loss over cord pixels only; only
the network and the corruption (noise instead of masking) differ. Its reconstruction is kept
inside the cord and the input pasted everywhere else, so scoring sees the same kind of map as
for U2AD. It has its own checkpoint format ("u2ad-dae").
"""
from __future__ import annotations

import dataclasses
import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..config import DAEConfig, PreprocessConfig, Thresholds, TrainConfig, U2ADConfig, from_dict, to_dict
from ..errors import CheckpointError, InputError
from ..io.atomic import atomic_path
from ..progress import CancelToken, ProgressCallback, ProgressEvent, emit
from ..training.augment import augment
from ..training.checkpoint import load_payload
from ..training.distributed import resolve_device
from ..training.loop import epoch_batches, step_generator
from ..training.slices_data import SliceArrays
from .base import MethodMaps

FORMAT = "u2ad-dae"
FORMAT_VERSION = 1
PathLike = Union[str, Path]


class ConvAutoencoder(nn.Module):
    """Stride-2 conv encoder (one stage per entry of `channels`), mirrored transposed-conv decoder,
    sigmoid output in [0, 1]."""

    def __init__(self, cfg: DAEConfig):
        super().__init__()
        self.cfg = cfg
        enc, c_in = [], 1
        for c in cfg.channels:
            enc += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c
        dec = []
        for c in list(reversed(cfg.channels[:-1])) + [cfg.channels[0]]:
            dec += [nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec, nn.Conv2d(c_in, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def check_size(cfg: DAEConfig, size: int) -> None:
    factor = 2 ** len(cfg.channels)
    if size % factor:
        raise InputError(None, f"the DAE halves the grid {len(cfg.channels)} times; a {size}-pixel grid must be a multiple of {factor}")


def roi_mse(recon: torch.Tensor, x: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """Mean squared error over ROI pixels; 0 (not NaN) for a batch without any."""
    w = roi.to(x.dtype)
    return ((recon - x) ** 2 * w).sum() / w.sum().clamp(min=1.0)


def train_dae(
    data: SliceArrays,
    train: TrainConfig,
    cfg: DAEConfig,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> tuple[ConvAutoencoder, list[float]]:
    """Train a DAE on `data` with `train`'s schedule; returns the model (eval mode, CPU) and the
    mean loss of every epoch. Seeded per step like the EdgeMAE loop, so runs repeat exactly."""
    if not len(data):
        raise InputError(None, "the training set is empty (no slice with cord in its mask)")
    check_size(cfg, data.images.shape[-1])
    device = resolve_device(train.device)
    torch.manual_seed(train.seed)
    model = ConvAutoencoder(cfg).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, betas=train.betas, weight_decay=train.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=train.lr_step_epochs, gamma=train.lr_gamma)
    images, roi = torch.from_numpy(data.images), torch.from_numpy(data.roi)
    losses, start = [], time.monotonic()
    for epoch in range(train.epochs):
        epoch_losses = []
        for step, idx in enumerate(epoch_batches(len(data), train.batch_size, train.seed, epoch)):
            if cancel is not None:
                cancel.check()
            gen = step_generator(train.seed, epoch, step)
            x = augment(images[idx], train, gen) if train.augment else images[idx]
            noisy = (x + cfg.noise_std * torch.randn(x.shape, generator=gen)).clamp(0.0, 1.0)
            loss = roi_mse(model(noisy.to(device)), x.to(device), roi[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_losses.append(float(loss.detach()))
        losses.append(float(np.mean(epoch_losses)))
        scheduler.step()
        elapsed = time.monotonic() - start
        emit(progress, ProgressEvent("epoch", task="pretrain", stage="DAE", epoch=epoch, epochs=train.epochs,
                                     loss=losses[-1], eta_s=elapsed / (epoch + 1) * (train.epochs - epoch - 1),
                                     fraction=(epoch + 1) / train.epochs))
    return model.cpu().eval(), losses


@dataclass
class LoadedDAE:
    model: ConvAutoencoder  # eval mode
    dae: DAEConfig
    train: TrainConfig
    preprocess: PreprocessConfig
    training_data: dict
    meta: dict
    path: Path


def save_dae(path: PathLike, model: ConvAutoencoder, train: TrainConfig, preprocess: PreprocessConfig,
             training_data: dict) -> None:
    """Write a DAE checkpoint atomically (plain types and tensors: readable with weights_only)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dae": to_dict(model.cfg),
        "train": to_dict(train),
        "preprocess": to_dict(preprocess),
        "weights": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training_data": training_data,
        "meta": {"package_version": __version__,
                 "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_dae(path: PathLike, device: str = "cpu") -> LoadedDAE:
    """Strict load; CheckpointError naming the file for anything that is not a complete DAE checkpoint."""
    path = Path(path)
    payload = load_payload(path, FORMAT, FORMAT_VERSION, "DAE")
    try:
        dae = from_dict(DAEConfig, payload["dae"])
        model = ConvAutoencoder(dae)
        model.load_state_dict(payload["weights"], strict=True)
        loaded = LoadedDAE(model=model.to(device).eval(), dae=dae, train=from_dict(TrainConfig, payload["train"]),
                           preprocess=from_dict(PreprocessConfig, payload["preprocess"]),
                           training_data=payload["training_data"], meta=payload["meta"], path=path)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: DAE checkpoint does not fit this version of u2adcore ({exc})") from exc
    return loaded


def reconstruct(model: ConvAutoencoder, images: np.ndarray, roi: np.ndarray, batch_size: int) -> np.ndarray:
    """[N, H, W] images -> reconstructions inside `roi`, the input pasted outside it."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size, None], dtype=np.float32))
            out.append(model(x.to(device))[:, 0].cpu().numpy())
    recon = np.concatenate(out) if out else np.zeros_like(images)
    return np.where(roi, recon, images).astype(np.float32)


class DAEMethod:
    """The DAE as a detector (methods/base.Method); error = |x - reconstruction| in the cord."""

    name = "dae"
    thresholds: Optional[Thresholds] = None

    def __init__(self, config: U2ADConfig, checkpoint: Optional[PathLike] = None):
        if checkpoint is None:
            raise InputError(None, "the DAE baseline has no shipped model: pass its checkpoint (--model DAE.pt)")
        device = str(resolve_device(config.inference.device))
        self.loaded = load_dae(checkpoint, device)
        self.batch_size = config.inference.batch_size
        trained = self.loaded.preprocess
        if (trained.size, trained.spacing_mm) != (config.preprocess.size, config.preprocess.spacing_mm):
            raise CheckpointError(
                f"{checkpoint}: the DAE was trained on a {trained.size}-pixel grid at {trained.spacing_mm} mm, "
                f"detection is set to {config.preprocess.size} pixels at {config.preprocess.spacing_mm} mm"
            )

    def maps(self, slices) -> list[MethodMaps]:
        if not slices:
            return []
        images = np.stack([s.image for s in slices])
        roi = np.stack([s.roi for s in slices])
        recon = reconstruct(self.loaded.model, images, roi, self.batch_size)
        return [MethodMaps(error=np.abs(images[i] - recon[i]), recon=recon[i], residual=images[i] - recon[i]) for i in range(len(slices))]

    def describe(self) -> dict:
        return {"method": self.name, "model_path": str(self.loaded.path), "dae": dataclasses.asdict(self.loaded.dae),
                "training_data": self.loaded.training_data}
