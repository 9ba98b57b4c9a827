"""Files the package ships: the default model."""
from __future__ import annotations

from pathlib import Path


def default_model_path() -> Path:
    """The pretrained EdgeMAE shipped inside the package (built by scripts/build_default_model.sh;
    what it was trained on is recorded in the checkpoint and in docs/MODEL.md)."""
    return Path(__file__).resolve().parent / "models" / "default.pt"


def itermask_model_path() -> Path:
    """The IterMask network shipped inside the package (built by scripts/build_itermask_model.sh;
    docs/ITERMASK.md)."""
    return Path(__file__).resolve().parent / "models" / "itermask.pt"
