"""Fixtures shared by the library's tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def phantoms_and_tiny_model(tmp_path_factory):
    """Factory: `(name, n, seed) -> (root, manifest, model)`, a written phantom set (half with
    lesions, 3 sagittal slices) and an untrained, seeded tiny EdgeMAE checkpoint beside it."""
    import torch

    from u2adcore.config import PhantomConfig, U2ADConfig
    from u2adcore.data.phantom import write_phantom_set
    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.model.presets import model_config
    from u2adcore.training.checkpoint import save_checkpoint

    def make(name: str, n: int, seed: int):
        root = tmp_path_factory.mktemp(name)
        manifest = write_phantom_set(root / "set", n, seed=seed, lesion_fraction=0.5, cfg=PhantomConfig(n_slices=3))
        cfg = U2ADConfig(model=model_config("tiny", context_band=1))
        torch.manual_seed(0)
        model = root / "tiny.pt"
        save_checkpoint(model, EdgeMAE(cfg.model), cfg, training_data={"n_studies": 0})
        return root, manifest, model

    return make
