"""The network and its checkpoint. MONAI's U-Net (residual units, instance norm, PReLU) rather
than one of our own: it is a maintained, widely used reference implementation, and MONAI needs
only torch and numpy (docs/SEGMENTATION.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from ..config import CordSegConfig, from_dict, to_dict
from ..errors import CheckpointError

FORMAT = "u2ad-cordseg-1"
IN_CHANNELS = 3  # the slice and its two sagittal neighbours


def build_unet(cfg: CordSegConfig) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=IN_CHANNELS,
        out_channels=1,
        channels=tuple(cfg.channels),
        strides=tuple(cfg.strides),
        num_res_units=cfg.num_res_units,
        norm="instance",
    )


def save_cordseg(path: Union[str, Path], net: torch.nn.Module, cfg: CordSegConfig, training: dict) -> None:
    """Weights in float16 (half the size, no measurable change in the mask), config, and what it was trained on."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save({"format": FORMAT, "config": to_dict(cfg), "state_dict": state, "training": training}, str(path))


def load_cordseg(path: Union[str, Path]) -> tuple[torch.nn.Module, CordSegConfig, dict]:
    path = Path(path)
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated, not a torch file
        raise CheckpointError(f"{path}: not a readable cord segmentation model ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cord segmentation model (format {payload.get('format') if isinstance(payload, dict) else None!r}, expected {FORMAT!r})")
    cfg = from_dict(CordSegConfig, payload["config"])
    net = build_unet(cfg)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    net.eval()
    return net, cfg, payload.get("training", {})
