"""Files the package ships: the default model."""
from __future__ import annotations

from pathlib import Path


def default_model_path() -> Path:
    """The pretrained EdgeMAE shipped inside the package (built by scripts/build_default_model.sh;
    what it was trained on is recorded in the checkpoint and in docs/MODEL.md)."""
    return Path(__file__).resolve().parent / "models" / "default.pt"


def cordseg_model_path() -> Path:
    """The cord segmentation U-Net shipped inside the package (built by
    scripts/build_cordseg_model.sh; docs/SEGMENTATION.md says on what)."""
    return Path(__file__).resolve().parent / "models" / "cordseg.pt"
