"""Shared fixtures. Real data lives in ../shared/data/realspine (never copied here); tests that
need it skip with the reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# One thread per process: the suite runs many tiny models (and worker subprocesses, which
# inherit this), where thread start-up costs more than it saves; results are also steadier.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
REALSPINE = Path(os.environ.get("U2AD_REALSPINE", REPO.parent / "shared" / "data" / "realspine"))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The same for this process, whatever imported torch first."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def realspine() -> Path:
    """Root of the real healthy spine MRI set; skips when it is absent."""
    if not (REALSPINE / "SOURCES.md").exists():
        pytest.skip(f"real spine data not found at {REALSPINE} (set U2AD_REALSPINE or place ../shared beside the repo)")
    return REALSPINE


@pytest.fixture(scope="session")
def errsm(realspine) -> dict:
    """The five errsm subjects with image, manual cord mask and C2/T2 landmarks."""
    subjects = {}
    for d in sorted((realspine / "sct_2014_errsm").iterdir()):
        if (d / "t2_manual_segmentation.nii.gz").exists():
            subjects[d.name] = {
                "image": d / "t2.nii.gz",
                "cord": d / "t2_manual_segmentation.nii.gz",
                "landmarks": d / "t2_landmarks_C2_T2_center.nii.gz",
            }
    return subjects
