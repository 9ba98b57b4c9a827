"""Pretraining on healthy studies (training strategy 1/3, METHOD.md §3): manifests and Spine
Generic folders -> slices -> EdgeMAE with random ROI masking -> one checkpoint."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..config import PreprocessConfig, TrainConfig, U2ADConfig
from ..errors import InputError
from ..model.edgemae import EdgeMAE
from ..model.masking import RandomMasking
from ..progress import CancelToken, ProgressCallback
from .checkpoint import file_sha256, save_checkpoint
from .distributed import DistContext
from .loop import History, RunInfo, train
from .slices_data import SliceArrays, concat, load_entries

# Named schedules: "paper" = the paper's 200 epochs with x0.1 every 50; "cpu" = the same shape
# compressed for a laptop-class CPU (used for the shipped model).
SCHEDULES: dict[str, dict] = {
    "paper": {"epochs": 200, "lr_step_epochs": 50},
    "cpu": {"epochs": 25, "lr_step_epochs": 10},
}


def apply_schedule(cfg: TrainConfig, name: str) -> TrainConfig:
    if name not in SCHEDULES:
        raise InputError(None, f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return dataclasses.replace(cfg, **SCHEDULES[name])


@dataclass(frozen=True)
class Source:
    """One origin of training studies, as recorded in the checkpoint."""

    kind: str  # "manifest" | "spine-generic"
    path: str
    sha256: str  # of the manifest file, or of the sorted image list of a Spine Generic folder
    entries: tuple  # ManifestEntry

    def record(self) -> dict:
        return {"kind": self.kind, "path": self.path, "sha256": self.sha256, "n_studies": len(self.entries)}


def manifest_source(path: Path) -> Source:
    from ..data.manifest import read_manifest

    return Source("manifest", str(path), file_sha256(path), tuple(read_manifest(path)))


def spine_generic_source(root: Path) -> Source:
    from ..data.bids import read_spine_generic

    entries = tuple(read_spine_generic(root))
    listing = "\n".join(str(e.image.relative_to(root)) for e in entries)
    return Source("spine-generic", str(root), hashlib.sha256(listing.encode()).hexdigest(), entries)


def load_sources(
    sources: Sequence[Source],
    preprocess: PreprocessConfig,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    task: str = "pretrain",
) -> SliceArrays:
    """Every study of every source as training slices; `task` labels the progress events."""
    seen: dict[str, str] = {}
    for src in sources:
        for e in src.entries:
            if e.id in seen:
                raise InputError(src.path, f"study id {e.id!r} is also listed in {seen[e.id]}; ids must be unique")
            seen[e.id] = src.path
    return concat(load_entries(src.entries, preprocess, source=src.path, progress=progress, cancel=cancel, task=task) for src in sources)


def pretrain(
    data: SliceArrays,
    sources: Sequence[Source],
    cfg: U2ADConfig,
    out: Path,
    *,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    resume: bool = False,
    ctx: Optional[DistContext] = None,
    ship: bool = False,
) -> tuple[EdgeMAE, History]:
    """Train a fresh EdgeMAE (seeded by cfg.train.seed) and write `out`.

    `out` stays resumable while training; with `ship` the finished file is rewritten as float16
    weights without optimizer state (what the package ships).
    """
    torch.manual_seed(cfg.train.seed)
    model = EdgeMAE(cfg.model)
    training_data = {**data.summary(), "sources": [s.record() for s in sources]}
    run_info = RunInfo(cfg, training_data, {"task": "pretrain"})
    history = train(
        model, data, cfg.train, strategy=RandomMasking(cfg.model.mask_ratio), progress=progress, cancel=cancel,
        checkpoint_path=out, resume=resume, run_info=run_info, ctx=ctx, task="pretrain",
    )
    if ship and (ctx is None or ctx.is_main):
        meta = {"task": "pretrain", "epochs_done": cfg.train.epochs, "epochs": cfg.train.epochs, "complete": True,
                "final_loss": history.losses[-1] if history.losses else None}
        save_checkpoint(out, model, cfg, training_data=training_data, meta=meta, half=True)
    return model, history
