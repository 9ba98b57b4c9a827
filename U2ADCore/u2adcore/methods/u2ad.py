"""U2AD as a detector: the adapted EdgeMAE, Monte-Carlo inference, error = |x - mu|, residual = x - mu (METHOD.md §4, §6).

The checkpoint is loaded once per method object, and all analysed slices go through
`mc_inference` in one call, so a manifest of many studies pays for loading only once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..config import U2ADConfig
from ..errors import CheckpointError
from .base import MethodMaps


def shipped_model_path() -> Path:
    """The packaged default model; a clear error when this installation lacks it."""
    from ..resources import default_model_path

    path = default_model_path()
    if not path.is_file():
        raise CheckpointError(f"{path}: the shipped model is missing from this installation; pass a checkpoint with --model")
    return path


class U2ADMethod:
    """The method this project is about. `checkpoint` None means the shipped model."""

    name = "u2ad"

    def __init__(self, config: U2ADConfig, checkpoint: Optional[Union[str, Path]] = None):
        from ..training.checkpoint import load_checkpoint
        from ..training.distributed import resolve_device

        self.inference = config.inference
        path = Path(checkpoint) if checkpoint is not None else shipped_model_path()
        self.loaded = load_checkpoint(path, resolve_device(config.inference.device))
        self.thresholds = self.loaded.thresholds
        trained = self.loaded.config
        self.model_config = trained.model  # the architecture run, recorded by detect.detection_config
        if trained.model.img_size != config.preprocess.size or trained.preprocess.spacing_mm != config.preprocess.spacing_mm:
            raise CheckpointError(
                f"{path}: the model was trained on a {trained.model.img_size}-pixel grid at "
                f"{trained.preprocess.spacing_mm} mm, detection is set to {config.preprocess.size} pixels at "
                f"{config.preprocess.spacing_mm} mm"
            )

    def maps(self, slices) -> list[MethodMaps]:
        import torch

        from ..uncertainty.montecarlo import mc_inference

        if not slices:
            return []
        images = torch.from_numpy(np.stack([s.image for s in slices])[:, None].astype(np.float32))
        roi = torch.from_numpy(np.stack([s.roi for s in slices])[:, None].astype(bool))
        inf = self.inference
        kwargs = dict(K=inf.mc_samples, schedule=inf.schedule, seed=inf.seed, batch_size=inf.batch_size, mask_ratio=inf.mask_ratio)
        if inf.refine_rounds > 0:
            from ..uncertainty.refine import refined_mc_inference

            mc, _ = refined_mc_inference(self.loaded.model, images, roi, rounds=inf.refine_rounds, mad_k=inf.refine_mad_k, **kwargs)
        else:
            mc = mc_inference(self.loaded.model, images, roi, **kwargs)
        return [
            MethodMaps(error=mc.au[i], eu=mc.eu[i], recon=mc.mu[i], residual=slices[i].image - mc.mu[i])
            for i in range(len(slices))
        ]

    def describe(self) -> dict:
        return {
            "method": self.name,
            "model_path": str(self.loaded.path),
            "sha256": self.loaded.sha256,
            "preset": self.loaded.config.model.preset,
        }
