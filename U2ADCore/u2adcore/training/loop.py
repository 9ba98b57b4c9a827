"""The training loop shared by pretraining and adaptation.

Everything random in a step (the epoch's order, augmentation, the mask) comes from a generator
seeded by (seed, epoch, step), and every rank draws it for the whole global batch. Hence a run
resumed from an epoch checkpoint, or split over N processes, ends with the same weights as one
uninterrupted single-process run, with no RNG state to carry around.

Adaptation reuses `train` with its own `TrainConfig` (lr, schedule), its own `MaskStrategy` and
an `epoch_hook(epoch, model)` that runs before every epoch (also the first one after a resume)
and may return a new strategy (e.g. switch from EU-guided to EU+AU at stage 2).
"""
from __future__ import annotations

import inspect

import contextlib
import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..config import TrainConfig, U2ADConfig, to_dict
from ..errors import CheckpointError, InputError
from ..model.edgemae import EdgeMAE
from ..model.masking import MaskStrategy
from ..model.patches import roi_patches
from ..progress import CancelToken, ProgressCallback, ProgressEvent, emit
from .augment import augment
from .checkpoint import build_model, read_checkpoint, save_checkpoint
from ..io.atomic import atomic_path, write_text
from .distributed import DistContext, barrier, resolve_device, sum_over_ranks
from .slices_data import SliceArrays

EpochHook = Callable[[int, EdgeMAE], Optional[MaskStrategy]]


@dataclass(frozen=True)
class ModelFamily:
    """How the loop writes and restores one kind of network (EdgeMAE, IterMask, ...).

    save(path, model, config, training_data=, meta=, train_state=); read(path) -> the validated
    raw payload with "train_state"; build(payload, path) -> the stored model. The network itself
    provides forward(x, roi_patches, mask), loss_weights and loss, and `cfg.patch_size` or a
    `patch_size` attribute (the unit its masks are drawn in).
    """

    save: Callable[..., None]
    read: Callable[[Path], dict]
    build: Callable[[dict, Path], torch.nn.Module]


EDGEMAE = ModelFamily(save=save_checkpoint, read=read_checkpoint, build=lambda payload, path: build_model(payload, path)[0])


def mask_unit(model: torch.nn.Module) -> int:
    """Patch size of the model's masks (1 for a pixel-mask network)."""
    return getattr(model, "patch_size", None) or model.cfg.patch_size


@dataclass
class RunInfo:
    """What the checkpoints of a run record besides weights: settings and training data."""

    config: U2ADConfig
    training_data: dict
    meta: dict = field(default_factory=dict)  # e.g. {"task": "pretrain"}


@dataclass
class History:
    """One record per finished epoch: epoch, loss (mean over steps), lr, images_per_s, seconds, stage."""

    epochs: list[dict] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        return [r["loss"] for r in self.epochs]


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The RNG of one optimisation step (augmentation and masking)."""
    return torch.Generator().manual_seed(_seed(seed, epoch, 1, step))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Global batches of an epoch: a seeded permutation cut into full batches (the remainder is
    dropped so every step sees the same batch size; a set smaller than one batch is one batch)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, epoch, 0)))
    if n < batch_size:
        return [order]
    return list(order[: n - n % batch_size].split(batch_size))


def _autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA GPUs that support it; CPU always runs in float32."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _check_inputs(model: EdgeMAE, data: SliceArrays, cfg: TrainConfig, ctx: DistContext) -> None:
    if not len(data):
        raise InputError(None, "the training set is empty (no slice with cord in its mask)")
    size = getattr(model.cfg, "img_size", None)
    if size is not None and data.images.shape[2:] != (size, size):
        raise InputError(None, f"training slices are {data.images.shape[2:]} pixels, the model expects {size} x {size}")
    if min(cfg.batch_size, len(data)) < ctx.world_size:
        raise InputError(None, f"batch of {min(cfg.batch_size, len(data))} slices cannot be split over {ctx.world_size} processes")


def _restore(path: Path, model: EdgeMAE, optimizer, scheduler, data: SliceArrays, cfg: TrainConfig,
             family: ModelFamily) -> tuple[int, History]:
    payload = family.read(path)
    state = payload["train_state"]
    if state is None:
        raise CheckpointError(f"{path}: holds a finished model without training state; nothing to resume")
    if state["n_slices"] != len(data) or state["seed"] != cfg.seed or state["batch_size"] != cfg.batch_size:
        raise CheckpointError(
            f"{path}: was trained with {state['n_slices']} slices, seed {state['seed']}, batch {state['batch_size']}; "
            f"resuming needs the same (now {len(data)}, {cfg.seed}, {cfg.batch_size})"
        )
    restored = family.build(payload, path)
    if restored.cfg != model.cfg:
        raise CheckpointError(f"{path}: holds a model with other settings than the one being trained")
    model.load_state_dict(restored.state_dict())
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["epoch"], History(list(state["history"]))


@dataclass
class _Clock:
    """Throughput and ETA over the steps run in this process (a resumed run starts afresh)."""

    total_steps: int
    start: float = field(default_factory=time.monotonic)
    steps: int = 0
    images: int = 0

    def tick(self, images: int) -> None:
        self.steps += 1
        self.images += images

    def rate(self) -> float:
        return self.images / max(time.monotonic() - self.start, 1e-9)

    def eta(self, done: int) -> float:
        return (time.monotonic() - self.start) / max(self.steps, 1) * (self.total_steps - done)


def train(
    model: EdgeMAE,
    data: SliceArrays,
    cfg: TrainConfig,
    *,
    strategy: MaskStrategy,
    epoch_hook: Optional[EpochHook] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    checkpoint_path: Optional[Path] = None,
    resume: bool = False,
    run_info: Optional[RunInfo] = None,
    ctx: Optional[DistContext] = None,
    task: str = "pretrain",
    family: ModelFamily = EDGEMAE,
) -> History:
    """Train `model` in place for cfg.epochs epochs; returns the per-epoch history.

    With `checkpoint_path`, a resumable checkpoint (needs `run_info`) and the loss curve
    (`<name>_loss.csv`/`.png`) are written every cfg.checkpoint_every epochs and at the end;
    `resume` continues from it. Cancel raises `Cancelled` within one step, leaving the last
    epoch checkpoint in place. `ctx` (from `distributed.init_from_env`) selects the device and
    the share of each batch this process trains on; None means one process on cfg.device.
    `family` says how checkpoints of this kind of model are written and read back.
    """
    ctx = ctx if ctx is not None else DistContext(device=resolve_device(cfg.device))
    if checkpoint_path is not None and run_info is None:
        raise ValueError("checkpoint_path needs run_info (settings and training-data summary to store)")
    _check_inputs(model, data, cfg, ctx)
    model.to(ctx.device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step_epochs, gamma=cfg.lr_gamma)
    start_epoch, history = 0, History()
    if resume:
        if checkpoint_path is None or not Path(checkpoint_path).exists():
            raise CheckpointError(f"{checkpoint_path}: no checkpoint to resume from")
        start_epoch, history = _restore(Path(checkpoint_path), model, optimizer, scheduler, data, cfg, family)
    net = model
    if ctx.distributed:
        net = DistributedDataParallel(model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
    report = progress if ctx.is_main else None
    steps = len(epoch_batches(len(data), cfg.batch_size, cfg.seed, 0))
    clock = _Clock(total_steps=steps * cfg.epochs)
    emit(report, ProgressEvent("start", task=task, epoch=start_epoch, epochs=cfg.epochs, steps=steps,
                               fraction=start_epoch / max(cfg.epochs, 1), stage=strategy.name))
    for epoch in range(start_epoch, cfg.epochs):
        if epoch_hook is not None:
            strategy = epoch_hook(epoch, model) or strategy
        lr = scheduler.get_last_lr()[0]
        epoch_start = time.monotonic()
        loss = _run_epoch(net, model, data, cfg, strategy, epoch, lr, ctx, optimizer, clock, cancel, report, task)
        record = {"epoch": epoch + 1, "loss": loss, "lr": lr, "images_per_s": steps * min(cfg.batch_size, len(data)) /
                  max(time.monotonic() - epoch_start, 1e-9), "seconds": time.monotonic() - epoch_start, "stage": strategy.name}
        history.epochs.append(record)
        scheduler.step()
        emit(report, ProgressEvent("epoch", task=task, stage=strategy.name, epoch=epoch, epochs=cfg.epochs, loss=loss,
                                   lr=lr, images_per_s=record["images_per_s"], fraction=(epoch + 1) / cfg.epochs))
        if checkpoint_path is not None and ctx.is_main and (epoch + 1 == cfg.epochs or (epoch + 1) % cfg.checkpoint_every == 0):
            _save(Path(checkpoint_path), model, run_info, cfg, optimizer, scheduler, epoch + 1, history, len(data), task, family)
            emit(report, ProgressEvent("checkpoint", task=task, epoch=epoch, epochs=cfg.epochs,
                                       fraction=(epoch + 1) / cfg.epochs, message=str(checkpoint_path)))
        barrier(ctx)
    if checkpoint_path is not None and ctx.is_main:
        write_loss_curve(Path(checkpoint_path), history.epochs, png=True)
    model.eval()
    return history


def _run_epoch(net, model: EdgeMAE, data: SliceArrays, cfg: TrainConfig, strategy: MaskStrategy, epoch: int, lr: float,
               ctx: DistContext, optimizer, clock: _Clock, cancel: Optional[CancelToken],
               report: Optional[ProgressCallback], task: str) -> float:
    """All steps of one epoch; returns the mean global loss."""
    images, roi = torch.from_numpy(data.images), torch.from_numpy(data.roi)
    batches = epoch_batches(len(data), cfg.batch_size, cfg.seed, epoch)
    losses = []
    for step, idx in enumerate(batches):
        if cancel is not None:
            cancel.check()
        gen = step_generator(cfg.seed, epoch, step)
        losses.append(float(sum_over_ranks(_step(net, model, images[idx], roi[idx], idx, cfg, strategy, gen, ctx, optimizer), ctx)))
        clock.tick(len(idx))
        done = epoch * len(batches) + step + 1
        emit(report, ProgressEvent(
            "step", task=task, stage=strategy.name, epoch=epoch, epochs=cfg.epochs, step=step + 1, steps=len(batches),
            loss=losses[-1], lr=lr, images_per_s=clock.rate(), eta_s=clock.eta(done), fraction=done / clock.total_steps,
        ))
    return float(np.mean(losses))


def _step(net, model: EdgeMAE, x, roi, idx, cfg: TrainConfig, strategy: MaskStrategy, gen: torch.Generator,
          ctx: DistContext, optimizer) -> torch.Tensor:
    """One optimisation step on this rank's share of the global batch; returns this rank's part
    of the global loss (parts sum to it; the gradient equals the whole batch's on any number of ranks)."""
    if cfg.augment:
        x = augment(x, cfg, gen)
    roi_p = roi_patches(roi, mask_unit(model))
    mask = strategy(idx, roi_p, gen)
    denominator = model.loss_weights(roi, mask).sum().to(ctx.device)
    share = ctx.shard(len(idx))
    x, roi, roi_p, mask = (t[share].to(ctx.device, non_blocking=True) for t in (x, roi, roi_p, mask))
    # the pixel cord goes to models that take it (EdgeMAE's normalisation), not to IterMask's net
    extra = {"roi": roi} if "roi" in inspect.signature(model.forward).parameters else {}
    with _autocast(ctx.device, cfg.amp):
        out = net(x, roi_p, mask, **extra)
    part = model.loss(x, roi, out, mask, denominator=denominator)  # this rank's share of the global loss
    optimizer.zero_grad(set_to_none=True)
    (part * ctx.world_size).backward()  # DDP averages gradients over ranks; this makes it their sum
    optimizer.step()
    return part.detach()


def _save(path: Path, model: EdgeMAE, run_info: RunInfo, cfg: TrainConfig, optimizer, scheduler, epochs_done: int,
          history: History, n_slices: int, task: str, family: ModelFamily) -> None:
    complete = epochs_done == cfg.epochs
    state = {"epoch": epochs_done, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "history": history.epochs, "n_slices": n_slices, "seed": cfg.seed, "batch_size": cfg.batch_size,
             "train_config": to_dict(cfg)}
    meta = {"task": task, "epochs_done": epochs_done, "epochs": cfg.epochs, "complete": complete, **run_info.meta}
    family.save(path, model, run_info.config, training_data=run_info.training_data, meta=meta, train_state=state)
    write_loss_curve(path, history.epochs, png=False)


CURVE_FIELDS = ("epoch", "loss", "lr", "images_per_s", "seconds", "stage")


def loss_curve_paths(checkpoint_path: Path) -> tuple[Path, Path]:
    """MODEL.pt -> (MODEL_loss.csv, MODEL_loss.png), beside the checkpoint."""
    stem = checkpoint_path.with_suffix("")
    return stem.with_name(stem.name + "_loss.csv"), stem.with_name(stem.name + "_loss.png")


def write_loss_curve(checkpoint_path: Path, records: list[dict], png: bool) -> None:
    csv_path, png_path = loss_curve_paths(checkpoint_path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: r[k] for k in CURVE_FIELDS} for r in records)
    write_text(csv_path, buf.getvalue())
    if png and records:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r["epoch"] for r in records], [r["loss"] for r in records], marker="." if len(records) < 50 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (masked ROI pixels)")
        ax.set_yscale("log")
        ax.set_title(checkpoint_path.name)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
