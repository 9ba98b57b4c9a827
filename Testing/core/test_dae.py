"""DAE baseline: it learns (loss falls), its checkpoint round-trips exactly, its maps follow the
Method contract (reconstruction only inside the cord)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from u2adcore.config import DAEConfig, PreprocessConfig, TrainConfig, U2ADConfig
from u2adcore.errors import CheckpointError, InputError
from u2adcore.methods.base import Method
from u2adcore.methods.dae import DAEMethod, load_dae, save_dae, train_dae
from u2adcore.training.slices_data import SliceArrays, SliceInfo
from u2adcore.volume.preprocess import PreparedSlice, SliceTransform

SIZE = 32
TINY = DAEConfig(channels=(4, 8), noise_std=0.1)


def _slices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vertical bright cords of random width on a dark background, slightly noisy."""
    rng = np.random.default_rng(seed)
    images = np.full((n, SIZE, SIZE), 0.1, np.float32)
    roi = np.zeros((n, SIZE, SIZE), bool)
    for i in range(n):
        c, w = rng.integers(12, 18), rng.integers(3, 6)
        roi[i, 2:30, c : c + w] = True
        images[i][roi[i]] = 0.6
        images[i] += rng.normal(0, 0.01, (SIZE, SIZE)).astype(np.float32)
    return np.clip(images, 0, 1), roi


def _train_cfg(epochs: int = 25) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=8, lr=1e-2, lr_step_epochs=20, device="cpu", augment=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    images, roi = _slices(16)
    data = SliceArrays(images[:, None], roi[:, None], [SliceInfo(f"s{i}", 0) for i in range(16)])
    model, losses = train_dae(data, _train_cfg(), TINY)
    path = tmp_path_factory.mktemp("dae") / "dae.pt"
    save_dae(path, model, _train_cfg(), PreprocessConfig(size=SIZE), data.summary())
    return model, losses, path


def test_training_reduces_the_loss(trained):
    _, losses, _ = trained
    assert len(losses) == 25 and all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]


def test_training_repeats_exactly():
    images, roi = _slices(8)
    data = SliceArrays(images[:, None], roi[:, None], [SliceInfo(f"s{i}", 0) for i in range(8)])
    a, la = train_dae(data, _train_cfg(2), TINY)
    b, lb = train_dae(data, _train_cfg(2), TINY)
    assert la == lb
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_checkpoint_round_trip_and_maps(trained):
    model, _, path = trained
    loaded = load_dae(path)
    assert loaded.dae == TINY and loaded.training_data["n_slices"] == 16
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k
    cfg = U2ADConfig(preprocess=PreprocessConfig(size=SIZE))
    cfg.inference.device = "cpu"
    method = DAEMethod(config=cfg, checkpoint=path)
    assert isinstance(method, Method)
    images, roi = _slices(3, seed=5)
    t = SliceTransform(0, (0.0, 0.0), 1.0, SIZE, (1.0, 1.0), (SIZE, SIZE), 0.0, 1.0)
    maps = method.maps([PreparedSlice(images[i], roi[i], t, None, f"t{i}") for i in range(3)])
    for i, m in enumerate(maps):
        assert m.recon.shape == (SIZE, SIZE) and m.eu is None
        np.testing.assert_array_equal(m.recon[~roi[i]], images[i][~roi[i]])  # input pasted outside the cord
        assert not m.error[~roi[i]].any()
        np.testing.assert_allclose(m.error, np.abs(images[i] - m.recon))
        assert m.error[roi[i]].mean() < 0.1  # a healthy cord is reconstructed


def test_dae_refuses_missing_wrong_or_mismatched_checkpoints(tmp_path, trained):
    _, _, path = trained
    with pytest.raises(InputError, match="no shipped model"):
        DAEMethod(config=U2ADConfig())
    with pytest.raises(CheckpointError, match="was trained on a 32-pixel grid"):
        DAEMethod(config=U2ADConfig(), checkpoint=path)
    other = tmp_path / "other.pt"
    torch.save({"format": "u2ad-edgemae", "format_version": 1}, other)
    with pytest.raises(CheckpointError, match="not a DAE checkpoint"):
        load_dae(other)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_dae(broken)
    with pytest.raises(InputError, match="multiple of 8"):
        images, roi = _slices(2)
        data = SliceArrays(images[:, None, :30, :30], roi[:, None, :30, :30], [SliceInfo("a", 0), SliceInfo("b", 0)])
        train_dae(data, _train_cfg(1), dataclasses.replace(TINY, channels=(4, 8, 8)))
