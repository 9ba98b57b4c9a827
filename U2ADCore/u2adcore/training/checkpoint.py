"""One checkpoint file: weights, the full U2ADConfig, what the model was trained on, calibrated
thresholds and (while training) the state needed to resume exactly.

Only plain types and tensors are stored, so `torch.load(weights_only=True)` reads it without
running pickled code. Loading is strict: another format version, a truncated file, a preset
that does not describe the size fields or weights that do not fit the model all raise
CheckpointError naming the file; nothing is ever half-loaded.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from .. import __version__
from ..config import Thresholds, U2ADConfig, from_dict, to_dict
from ..errors import CheckpointError
from ..io.atomic import atomic_path
from ..model.edgemae import EdgeMAE
from ..model.presets import preset_mismatch

FORMAT = "u2ad-edgemae"
FORMAT_VERSION = 1
PathLike = Union[str, Path]


@dataclass
class LoadedModel:
    model: EdgeMAE  # in eval mode, on the requested device
    config: U2ADConfig  # as trained (config.model describes `model`)
    thresholds: Optional[Thresholds]
    training_data: dict  # n_studies, n_slices, studies, sources (manifest sha256, ...)
    meta: dict  # package_version, created, task, epochs_done, complete, weights_dtype
    sha256: str  # of the file
    path: Path


def file_sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    path: PathLike,
    model: torch.nn.Module,
    config: U2ADConfig,
    *,
    training_data: dict,
    thresholds: Optional[Thresholds] = None,
    meta: Optional[dict] = None,
    train_state: Optional[dict] = None,
    half: bool = False,
) -> None:
    """Write atomically. `config.model` is replaced by the model's own config so they cannot
    disagree; `half` stores float16 weights (the shipped model), loaded back as float32."""
    dtype = torch.float16 if half else torch.float32
    weights = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "config": to_dict(dataclasses.replace(config, model=model.cfg)),
        "weights": weights,
        "thresholds": None if thresholds is None else to_dict(thresholds),
        "training_data": training_data,
        "meta": {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "weights_dtype": str(dtype).removeprefix("torch."), **(meta or {})},
        "train_state": train_state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_payload(path: PathLike, fmt: str, version: int, what: str) -> dict:
    """torch.load a checkpoint file of format `fmt` at `version` (weights only). CheckpointError
    naming the file when it is missing, unreadable, of another format or of another version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch reports truncation/corruption with many exception types
        raise CheckpointError(f"{path}: not a readable checkpoint, the file is truncated or corrupt ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path}: not a {what} checkpoint")
    found = payload.get("format_version")
    if found != version:
        raise CheckpointError(
            f"{path}: {what} checkpoint format version {found} is not supported by u2adcore {__version__} "
            f"(it reads version {version}); retrain or convert it with the matching version"
        )
    return payload


def read_checkpoint(path: PathLike) -> dict:
    """The validated raw payload (format and version checked). CheckpointError otherwise."""
    payload = load_payload(path, FORMAT, FORMAT_VERSION, "U2AD EdgeMAE")
    missing = sorted({"config", "weights", "thresholds", "training_data", "meta", "train_state"} - set(payload))
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return payload


def config_of(payload: dict, path: PathLike) -> U2ADConfig:
    try:
        return from_dict(U2ADConfig, payload["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its settings do not fit this version of u2adcore ({exc})") from exc


def build_model(payload: dict, path: PathLike, device: Union[str, torch.device] = "cpu") -> tuple[EdgeMAE, U2ADConfig]:
    """The model of a validated payload with its weights loaded strictly, in eval mode."""
    config = config_of(payload, path)
    problems = preset_mismatch(config.model)
    if problems:
        raise CheckpointError(f"{path}: model size does not match its preset name: " + "; ".join(problems))
    model = EdgeMAE(config.model)
    try:
        model.load_state_dict(payload["weights"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model its settings describe ({exc})") from exc
    return model.to(device).eval(), config


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu") -> LoadedModel:
    path = Path(path)
    payload = read_checkpoint(path)
    model, config = build_model(payload, path, device)
    thresholds = None
    if payload["thresholds"] is not None:
        try:
            thresholds = from_dict(Thresholds, payload["thresholds"])
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: stored thresholds are unreadable ({exc})") from exc
    return LoadedModel(
        model=model,
        config=config,
        thresholds=thresholds,
        training_data=payload["training_data"],
        meta={"package_version": payload["package_version"], **payload["meta"]},
        sha256=file_sha256(path),
        path=path,
    )


def update_thresholds(path: PathLike, thresholds: Optional[Thresholds], out: Optional[PathLike] = None) -> Path:
    """Store calibrated thresholds in a checkpoint (in place, or into `out`); everything else is
    kept byte-for-byte equal in content. Returns the path written."""
    payload = read_checkpoint(path)
    payload["thresholds"] = None if thresholds is None else to_dict(thresholds)
    target = Path(out) if out is not None else Path(path)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target

