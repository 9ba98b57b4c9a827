"""Uncertainty-guided adaptation (METHOD.md §5, the paper's Algorithm 2) on top of the shared
training loop.

The loop trains; this module decides what to mask. An epoch hook refreshes the per-slice
uncertainty every `refresh_every` epochs with the current model (Monte-Carlo inference on all
training slices) and switches the masking strategy at the stage boundary:
- stage 1 "EU-guided": high-EU patches are masked more often;
- stage 2 "EU+AU": the same, but patches touching an AU anomaly candidate are never masked, so
  the model never learns to reconstruct a lesion.

What the strategies read (per-patch EU sums and candidate patches of each refresh) is kept in
`<OUT>_uncertainty.npz` beside the checkpoint, so a resumed run masks with exactly the maps the
uninterrupted run would have used.
"""
from __future__ import annotations

import dataclasses
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import AdaptConfig, InferenceConfig, U2ADConfig
from ..errors import CheckpointError, InputError
from ..io.atomic import atomic_path
from ..model.masking import MaskStrategy, RandomMasking
from ..model.patches import roi_patches
from ..progress import CancelToken, ProgressCallback, ProgressEvent, emit
from ..training.checkpoint import LoadedModel, load_checkpoint
from ..training.distributed import resolve_device
from ..training.loop import RunInfo, train
from ..training.slices_data import SliceArrays
from ..scoring.maps import analysis_roi
from .guided import au_candidates, eu_guided_mask, patch_sums
from .montecarlo import mc_inference

STAGE_EU = "EU-guided"
STAGE_EU_AU = "EU+AU"
TASK = "adapt"
# The settings a schedule ("paper" or "cpu") decides.
SCHEDULE_FIELDS: tuple[str, ...] = ("epochs", "stage2_start", "refresh_every", "mc_samples", "lr_step_epochs")


def resolve_schedule(cfg: AdaptConfig, device: torch.device) -> AdaptConfig:
    """The settings actually run: "auto" becomes "cpu" on a CPU device and "paper" elsewhere;
    "cpu" puts the cpu_* values in place of the paper's stage lengths, refresh and LR steps."""
    name = cfg.schedule if cfg.schedule != "auto" else ("cpu" if device.type == "cpu" else "paper")
    if name not in ("cpu", "paper"):
        raise ValueError(f"unknown adaptation schedule {cfg.schedule!r}; choose auto, cpu or paper")
    if name == "paper":
        return dataclasses.replace(cfg, schedule="paper")
    return dataclasses.replace(
        cfg, schedule="cpu", **{k: getattr(cfg, "cpu_" + k) for k in SCHEDULE_FIELDS})


def override_schedule(cfg: AdaptConfig, device: torch.device, **values: int) -> AdaptConfig:
    """Set schedule fields (SCHEDULE_FIELDS) of the schedule that will run on `device`: the
    cpu_* fields for the CPU schedule, the plain ones for the paper's; "auto" is made concrete.
    Changing `epochs` alone moves `stage2_start` with it."""
    unknown = sorted(set(values) - set(SCHEDULE_FIELDS))
    if unknown:
        raise ValueError(f"not schedule settings: {unknown}")
    resolved = resolve_schedule(cfg, device)
    if "epochs" in values and "stage2_start" not in values:
        # A shorter or longer run keeps the schedule's proportions (paper: stage 2 from 3/4 on).
        values["stage2_start"] = int(values["epochs"] * resolved.stage2_start / resolved.epochs)
    name = resolved.schedule
    prefix = "cpu_" if name == "cpu" else ""
    return dataclasses.replace(cfg, schedule=name, **{prefix + k: v for k, v in values.items()})


def check_settings(cfg: AdaptConfig) -> None:
    """Refuse settings that would fail (or silently do nothing) hours into a run."""
    problems = [f"{name} must be at least 1, got {getattr(cfg, name)}"
                for name in ("epochs", "refresh_every", "mc_samples", "batch_size", "lr_step_epochs") if getattr(cfg, name) < 1]
    if cfg.temperature <= 0:
        problems.append(f"temperature must be positive, got {cfg.temperature}")
    if cfg.strategy not in ("random", "eu", "eu+au"):
        problems.append(f"strategy must be random, eu or eu+au, got {cfg.strategy!r}")
    if cfg.strategy == "eu+au" and not 0 <= cfg.stage2_start < cfg.epochs:
        problems.append(f"stage2_start {cfg.stage2_start} must lie in [0, epochs={cfg.epochs}) for the eu+au strategy")
    if problems:
        raise InputError("adaptation settings", "; ".join(problems))


def stage_of(cfg: AdaptConfig, epoch: int) -> str:
    """The masking stage of an epoch: "random", "EU-guided" or "EU+AU"."""
    if cfg.strategy == "random":
        return "random"
    if cfg.strategy == "eu+au" and epoch >= cfg.stage2_start:
        return STAGE_EU_AU
    return STAGE_EU


def maps_path(out_path: Path) -> Path:
    """ADAPTED.pt -> ADAPTED_uncertainty.npz, beside the checkpoint."""
    stem = Path(out_path).with_suffix("")
    return stem.with_name(stem.name + "_uncertainty.npz")


@dataclass
class UncertaintyMaps:
    """What the guided strategies read, one row per training slice, from the refresh at `epoch`;
    `history` keeps every refresh of the run (epoch -> (patch EU, candidates)), `log` their records."""

    epoch: Optional[int] = None
    patch_eu: Optional[torch.Tensor] = None  # float64 [N, L]: EU summed over each patch
    candidates: Optional[torch.Tensor] = None  # bool [N, L]: patches touching an AU candidate
    history: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)

    def use(self, epoch: int) -> None:
        eu, cand = self.history[epoch]
        self.epoch, self.patch_eu, self.candidates = epoch, torch.from_numpy(eu).double(), torch.from_numpy(cand)

    def forget_from(self, epoch: int) -> None:
        """Drop refreshes at or after `epoch` (an interrupted run got further than its checkpoint)."""
        self.history = {e: v for e, v in self.history.items() if e < epoch}
        self.log = [r for r in self.log if r["epoch"] < epoch]

    def save(self, path: Path) -> None:
        epochs = sorted(self.history)
        buf = io.BytesIO()
        np.savez_compressed(
            buf, epochs=np.array(epochs, dtype=np.int64), log=np.array(json.dumps(self.log)),
            patch_eu=np.stack([self.history[e][0] for e in epochs]),
            candidates=np.stack([self.history[e][1] for e in epochs]),
        )
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path, n_slices: int) -> "UncertaintyMaps":
        try:
            with np.load(path) as f:
                epochs, eu, cand, log = f["epochs"], f["patch_eu"], f["candidates"], json.loads(str(f["log"]))
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: unreadable uncertainty maps of the interrupted run ({exc})") from exc
        if eu.shape[1] != n_slices:
            raise CheckpointError(f"{path}: holds maps of {eu.shape[1]} slices, the training set has {n_slices}")
        return cls(history={e: (eu[i], cand[i]) for i, e in enumerate(epochs.tolist())}, log=log)


@dataclass(frozen=True)
class GuidedMasking:
    """MaskStrategy: EU-guided sampling, optionally never masking AU-candidate patches."""

    maps: UncertaintyMaps
    ratio: float
    temperature: float
    scaling: str
    exclude_candidates: bool
    name: str

    def __call__(self, indices: torch.Tensor, roi_p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        exclude = self.maps.candidates[indices] if self.exclude_candidates else None
        return eu_guided_mask(roi_p, self.maps.patch_eu[indices], self.ratio, self.temperature, self.scaling, generator, exclude)


def slice_candidates(au: np.ndarray, roi: np.ndarray, cfg: AdaptConfig) -> np.ndarray:
    """AU candidates of one slice (labels [H, W]) on the cord eroded by `cfg.au_erode_px`, so that
    the partial-volume boundary ring, large in every study, cannot crowd out a lesion."""
    return au_candidates(au, analysis_roi(roi, cfg.au_erode_px), cfg.au_percentile, cfg.au_top_k, cfg.au_min_size,
                         cfg.au_component_score)


def refresh_maps(model, data: SliceArrays, cfg: AdaptConfig, inference: InferenceConfig, epoch: int,
                 cancel: Optional[CancelToken] = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Monte-Carlo EU/AU of every training slice with the current model -> (patch EU sums
    float32 [N, L], candidate patches bool [N, L], a log record).

    Slices go in groups of `inference.batch_size` to bound memory; each group's masks are seeded
    by (seed, epoch, group), so a resumed run recomputes the same maps.
    """
    start = time.monotonic()
    p, n, step = model.cfg.patch_size, len(data), inference.batch_size
    patch_eu, candidates, eu_sum, au_sum = [], [], 0.0, 0.0
    for g, lo in enumerate(range(0, n, step)):
        roi = data.roi[lo : lo + step]
        seed = int(np.random.SeedSequence([cfg.seed, epoch, g]).generate_state(1)[0])
        res = mc_inference(model, data.images[lo : lo + step], roi, K=cfg.mc_samples, schedule=inference.schedule,
                           seed=seed, batch_size=inference.batch_size, cancel=cancel)
        patch_eu.append(patch_sums(torch.from_numpy(res.eu), p).numpy().astype(np.float32))
        labels = np.stack([
            slice_candidates(res.au[i], roi[i, 0], cfg) for i in range(len(roi))
        ])
        candidates.append(roi_patches(torch.from_numpy(labels > 0)[:, None], p).numpy())
        eu_sum += float(res.eu[roi[:, 0]].sum())
        au_sum += float(res.au[roi[:, 0]].sum())
    n_roi = max(int(data.roi.sum()), 1)
    candidates = np.concatenate(candidates)
    record = {"epoch": epoch, "seconds": round(time.monotonic() - start, 3), "mean_eu": eu_sum / n_roi,
              "mean_au": au_sum / n_roi, "candidate_patches": int(candidates.sum())}
    return np.concatenate(patch_eu), candidates, record


class AdaptationHook:
    """The loop's epoch hook: refresh the maps on schedule, switch the stage, report both.

    `maps.log` (also in the checkpoint's meta["refreshes"]) records every refresh.
    """

    def __init__(self, data: SliceArrays, cfg: AdaptConfig, inference: InferenceConfig, ratio: float, store: Path,
                 run_meta: dict, progress: Optional[ProgressCallback], cancel: Optional[CancelToken], resume: bool):
        self.data, self.cfg, self.inference, self.store = data, cfg, inference, store
        self.progress, self.cancel, self.run_meta = progress, cancel, run_meta
        self.maps = UncertaintyMaps.load(store, len(data)) if resume and store.exists() else UncertaintyMaps()
        self.stage: Optional[str] = None
        common = dict(maps=self.maps, ratio=ratio, temperature=cfg.temperature, scaling=cfg.eu_scaling)
        self.strategies: dict[str, MaskStrategy] = {
            "random": RandomMasking(ratio),
            STAGE_EU: GuidedMasking(exclude_candidates=False, name=STAGE_EU, **common),
            STAGE_EU_AU: GuidedMasking(exclude_candidates=True, name=STAGE_EU_AU, **common),
        }

    def initial_strategy(self) -> MaskStrategy:
        return self.strategies[stage_of(self.cfg, 0)]

    def __call__(self, epoch: int, model) -> MaskStrategy:
        if self.stage is None:  # first epoch of this process (0, or where a resumed run goes on)
            self.maps.forget_from(epoch + 1)
            self.run_meta["refreshes"] = list(self.maps.log)
        stage = stage_of(self.cfg, epoch)
        if stage != "random":
            self._ensure_maps(epoch, model)
        if stage != self.stage:
            self.stage = stage
            emit(self.progress, ProgressEvent("stage", task=TASK, stage=stage, epoch=epoch, epochs=self.cfg.epochs,
                                              fraction=epoch / self.cfg.epochs, message=f"stage {stage} from epoch {epoch + 1}"))
        return self.strategies[stage]

    def _ensure_maps(self, epoch: int, model) -> None:
        due = epoch - epoch % self.cfg.refresh_every
        if self.maps.epoch == due:
            return
        if due in self.maps.history and due != epoch:
            self.maps.use(due)  # resumed between two refreshes: the maps the run was using
            return
        eu, cand, record = refresh_maps(model, self.data, self.cfg, self.inference, epoch, self.cancel)
        self.maps.forget_from(epoch)
        self.maps.history[epoch] = (eu, cand)
        self.maps.log.append(record)
        self.maps.use(epoch)
        self.maps.save(self.store)
        self.run_meta["refreshes"] = list(self.maps.log)
        emit(self.progress, ProgressEvent(
            "message", task=TASK, stage=stage_of(self.cfg, epoch), epoch=epoch, epochs=self.cfg.epochs,
            fraction=epoch / self.cfg.epochs,
            message=f"uncertainty maps refreshed at epoch {epoch + 1} ({record['seconds']:.1f} s, "
                    f"{record['candidate_patches']} candidate patches)",
        ))


def adapt(
    loaded: LoadedModel,
    data: SliceArrays,
    cfg: AdaptConfig,
    *,
    out_path: Path,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    resume: bool = False,
    training_data: Optional[dict] = None,
) -> LoadedModel:
    """Adapt `loaded.model` (in place) to the target slices `data` and write `out_path`.

    `cfg.schedule` is resolved for the device first ("auto" -> "cpu" on a CPU); the checkpoint
    stores the resolved settings, the pretrained model's sha256 and the refresh log
    (`meta["refreshes"]`). Returns the adapted model as loaded back from `out_path`.
    """
    out_path = Path(out_path)
    device = resolve_device(cfg.device)
    cfg = resolve_schedule(cfg, device)
    check_settings(cfg)
    config: U2ADConfig = dataclasses.replace(loaded.config, adapt=cfg)
    train_cfg = dataclasses.replace(
        loaded.config.train, epochs=cfg.epochs, lr=cfg.lr, lr_step_epochs=cfg.lr_step_epochs, lr_gamma=cfg.lr_gamma,
        batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device, amp=cfg.amp, checkpoint_every=cfg.checkpoint_every,
    )
    meta = {"task": TASK, "strategy": cfg.strategy, "schedule": cfg.schedule,
            "pretrained": {"path": str(loaded.path), "sha256": loaded.sha256}}
    if not resume:  # a fresh run: maps of an earlier run at this path would be mistaken for ours
        maps_path(out_path).unlink(missing_ok=True)
    hook = AdaptationHook(data, cfg, loaded.config.inference, loaded.model.cfg.mask_ratio, maps_path(out_path),
                          meta, progress, cancel, resume)
    run_info = RunInfo(config, training_data if training_data is not None else data.summary(), meta)
    train(loaded.model, data, train_cfg, strategy=hook.initial_strategy(), epoch_hook=hook, progress=progress,
          cancel=cancel, checkpoint_path=out_path, resume=resume, run_info=run_info, task=TASK)
    return load_checkpoint(out_path, device)
