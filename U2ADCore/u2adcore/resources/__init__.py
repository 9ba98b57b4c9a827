"""Files the package ships: the default model and a real sample study (resources/sample/)."""
from __future__ import annotations

import json
from pathlib import Path

_HERE = Path(__file__).resolve().parent

# The sample study's files (built by scripts/build_sample.py; source and licence in sample/README.md).
SAMPLE_FILES: dict[str, str] = {
    "image": "errsm21_T2w.nii.gz",  # as acquired (cropped)
    "image_lesion": "errsm21_T2w_pseudolesion.nii.gz",  # the same with one seeded pseudo-lesion
    "lesion": "errsm21_pseudolesion_mask.nii.gz",
    "cord": "errsm21_cord.nii.gz",  # manual spinal-cord mask
    "discs": "errsm21_discs.nii.gz",  # manual disc labels, SCT values 3 = C2-C3 … 8 = C7-T1
    "discs_markups": "errsm21_discs.mrk.json",  # the same six discs as a Slicer point list
    "thumbnail": "thumbnail.png",  # for Slicer's Sample Data panel
    "meta": "sample.json",  # crop box, lesion seed and segment, checksums
    "readme": "README.md",  # source, commit, licence, what was done
    "licence": "LICENSE",  # the MIT notices of the data's sources
}


def default_model_path() -> Path:
    """The pretrained EdgeMAE shipped inside the package (built by scripts/build_default_model.sh;
    what it was trained on is recorded in the checkpoint and in docs/MODEL.md)."""
    return _HERE / "models" / "default.pt"


def sample_dir() -> Path:
    return _HERE / "sample"


def sample_paths() -> dict[str, Path]:
    """SAMPLE_FILES names -> paths inside the installed package."""
    return {name: sample_dir() / fname for name, fname in SAMPLE_FILES.items()}


def sample_metadata() -> dict:
    """sample.json: where the sample comes from and where its pseudo-lesion is."""
    return json.loads((sample_dir() / SAMPLE_FILES["meta"]).read_text(encoding="utf-8"))


def itermask_model_path() -> Path:
    """The IterMask network shipped inside the package (built by scripts/build_itermask_model.sh;
    docs/ITERMASK.md)."""
    return _HERE / "models" / "itermask.pt"


def cordseg_model_path() -> Path:
    """The cord segmentation U-Net shipped inside the package (built by
    scripts/build_cordseg_model.sh; docs/SEGMENTATION.md says on what)."""
    return _HERE / "models" / "cordseg.pt"
