"""Uncertainty-guided adaptation (METHOD.md §5) on a tiny EdgeMAE and 64 x 64 slices."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from u2adcore.config import AdaptConfig, InferenceConfig, U2ADConfig
from u2adcore.errors import Cancelled
from u2adcore.model.edgemae import EdgeMAE
from u2adcore.model.masking import masked_count
from u2adcore.model.patches import patch_to_pixels, roi_patches
from u2adcore.model.presets import model_config
from u2adcore.progress import CancelToken
from u2adcore.training.checkpoint import load_checkpoint, save_checkpoint
from u2adcore.training.slices_data import SliceArrays, SliceInfo
from u2adcore.uncertainty.adapt import (
    STAGE_EU,
    STAGE_EU_AU,
    AdaptationHook,
    adapt,
    maps_path,
    override_schedule,
    resolve_schedule,
)

N_SLICES = 4


def _slices() -> SliceArrays:
    """Smooth 64 x 64 images with a vertical cord band; half of them carry a bright blob in it."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    x = np.stack([gaussian_filter(rng.random((64, 64)), 2) for _ in range(N_SLICES)])
    x = (x - x.min()) / (x.max() - x.min())
    roi = np.zeros_like(x, dtype=bool)
    roi[:, 4:60, 26:38] = True
    x[::2, 20:26, 29:35] = 1.0
    return SliceArrays(x[:, None].astype(np.float32), roi[:, None], [SliceInfo(f"s{i // 2}", i % 2) for i in range(N_SLICES)])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    torch.manual_seed(0)
    model = EdgeMAE(model_config("tiny", img_size=64))
    path = tmp_path_factory.mktemp("pre") / "pre.pt"
    config = U2ADConfig(model=model.cfg, inference=InferenceConfig(batch_size=16))
    save_checkpoint(path, model, config, training_data={"n_slices": 0})
    return path


def _cfg(**kw) -> AdaptConfig:
    base = dict(schedule="paper", epochs=4, stage2_start=2, refresh_every=2, mc_samples=2, batch_size=4,
                lr=1e-3, lr_step_epochs=2, device="cpu")
    return AdaptConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def full_run(pretrained, tmp_path_factory):
    """An uninterrupted 4-epoch eu+au run: (adapted model, progress events, output path)."""
    events = []
    path = tmp_path_factory.mktemp("full") / "a.pt"
    return adapt(load_checkpoint(pretrained), _slices(), _cfg(), out_path=path, progress=events.append), events, path


def test_refreshes_on_schedule_and_switches_stage_at_the_configured_epoch(pretrained, full_run):
    out, events, path = full_run
    refreshed = [e.epoch for e in events if e.kind == "message" and "refreshed" in e.message]
    assert refreshed == [0, 2]
    assert [r["epoch"] for r in out.meta["refreshes"]] == [0, 2]
    stages = [e.stage for e in events if e.kind == "epoch"]
    assert stages == [STAGE_EU] * 2 + [STAGE_EU_AU] * 2
    assert [(e.epoch, e.stage) for e in events if e.kind == "stage"] == [(0, STAGE_EU), (2, STAGE_EU_AU)]
    assert out.config.adapt.stage2_start == 2 and out.meta["task"] == "adapt"
    assert out.meta["pretrained"]["sha256"] == load_checkpoint(pretrained).sha256
    assert maps_path(path).exists()


def test_eu_strategy_never_enters_stage_2_and_random_never_refreshes(pretrained, tmp_path):
    events = []
    adapt(load_checkpoint(pretrained), _slices(), _cfg(strategy="eu", epochs=2, stage2_start=1),
          out_path=tmp_path / "eu.pt", progress=events.append)
    assert {e.stage for e in events if e.kind == "epoch"} == {STAGE_EU}
    events = []
    out = adapt(load_checkpoint(pretrained), _slices(), _cfg(strategy="random", epochs=1), out_path=tmp_path / "r.pt",
                progress=events.append)
    assert {e.stage for e in events if e.kind == "epoch"} == {"random"}
    assert out.meta["refreshes"] == [] and not any("refreshed" in e.message for e in events)


def _stage2_strategy(pretrained, tmp_path):
    """The real hook at a stage-2 epoch: maps refreshed with the pretrained model."""
    loaded = load_checkpoint(pretrained)
    data = _slices()
    cfg = _cfg(au_top_k=2)
    hook = AdaptationHook(data, cfg, loaded.config.inference, 0.75, tmp_path / "m.npz", {}, None, None, False)
    strategy = hook(cfg.stage2_start, loaded.model)
    assert strategy.name == STAGE_EU_AU
    return loaded.model, data, strategy, hook.maps


def test_au_candidates_are_never_masked_and_never_in_the_loss(pretrained, tmp_path):
    model, data, strategy, maps = _stage2_strategy(pretrained, tmp_path)
    x, roi = torch.from_numpy(data.images), torch.from_numpy(data.roi)
    roi_p = roi_patches(roi, 8)
    cand = maps.candidates
    assert cand.any(dim=1).all() and not (cand & ~roi_p).any()  # every slice has candidates, in the cord
    idx = torch.arange(N_SLICES)
    k = masked_count(roi_p.sum(dim=1), 0.75)
    for seed in range(50):
        mask = strategy(idx, roi_p, torch.Generator().manual_seed(seed))
        assert not (mask & cand).any()
        assert torch.equal(mask.sum(dim=1), torch.minimum(k, (roi_p & ~cand).sum(dim=1)))
    out = model(x, roi_p, mask)
    image = out.image.detach().requires_grad_(True)
    edge = out.edge.detach().requires_grad_(True)
    loss = model.loss(x, roi, type(out)(image=image, edge=edge), mask)
    loss.backward()
    on_candidates = patch_to_pixels(cand, 8)
    assert image.grad[on_candidates].abs().max() == 0 and edge.grad[on_candidates].abs().max() == 0
    assert image.grad[patch_to_pixels(mask, 8) & roi].abs().min() > 0


def test_stage_1_masks_high_eu_patches_more_often(pretrained, tmp_path):
    """Mask frequency over many steps follows each slice's patch EU ranking."""
    from scipy.stats import spearmanr

    loaded = load_checkpoint(pretrained)
    data = _slices()
    hook = AdaptationHook(data, _cfg(), loaded.config.inference, 0.75, tmp_path / "m.npz", {}, None, None, False)
    strategy = hook(0, loaded.model)
    assert strategy.name == STAGE_EU
    roi_p = roi_patches(torch.from_numpy(data.roi[:1]), 8).expand(3000, -1)
    masks = strategy(torch.zeros(3000, dtype=torch.long), roi_p, torch.Generator().manual_seed(0))
    inside = roi_p[0]
    freq = masks.double().mean(dim=0)[inside].numpy()
    assert spearmanr(hook.maps.patch_eu[0, inside].numpy(), freq).statistic > 0.8


def test_resumed_run_ends_with_the_same_weights(pretrained, full_run, tmp_path):
    """Cancelled after epoch 1 (between the refreshes at 0 and 2), then resumed: the maps of the
    refresh at epoch 0 come back from the sidecar, so the weights equal an uninterrupted run's."""
    full = full_run[0]
    token = CancelToken()

    def cancel_after_epoch_1(ev):
        if ev.kind == "checkpoint" and ev.epoch == 0:
            token.cancel()

    with pytest.raises(Cancelled):
        adapt(load_checkpoint(pretrained), _slices(), _cfg(), out_path=tmp_path / "part.pt",
              progress=cancel_after_epoch_1, cancel=token)
    assert load_checkpoint(tmp_path / "part.pt").meta["epochs_done"] == 1
    events = []
    resumed = adapt(load_checkpoint(pretrained), _slices(), _cfg(), out_path=tmp_path / "part.pt", resume=True,
                    progress=events.append)
    assert [e.epoch for e in events if e.kind == "message" and "refreshed" in e.message] == [2]
    assert [r["epoch"] for r in resumed.meta["refreshes"]] == [0, 2]
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_schedule_follows_the_device():
    cfg = AdaptConfig()
    cpu = resolve_schedule(cfg, torch.device("cpu"))
    assert (cpu.schedule, cpu.epochs, cpu.stage2_start, cpu.refresh_every, cpu.mc_samples, cpu.lr_step_epochs) == (
        "cpu", cfg.cpu_epochs, cfg.cpu_stage2_start, cfg.cpu_refresh_every, cfg.cpu_mc_samples, cfg.cpu_lr_step_epochs)
    gpu = resolve_schedule(cfg, torch.device("cuda"))
    assert (gpu.schedule, gpu.epochs, gpu.stage2_start, gpu.refresh_every, gpu.mc_samples) == ("paper", 200, 150, 10, 10)
    forced = resolve_schedule(dataclasses.replace(cfg, schedule="paper"), torch.device("cpu"))
    assert forced.epochs == 200
    with pytest.raises(ValueError, match="unknown adaptation schedule 'fast'"):
        resolve_schedule(dataclasses.replace(cfg, schedule="fast"), torch.device("cpu"))


def test_changing_epochs_alone_keeps_the_stage_proportions():
    cfg = AdaptConfig()
    paper = resolve_schedule(override_schedule(AdaptConfig(schedule="paper"), torch.device("cpu"), epochs=8), torch.device("cpu"))
    assert (paper.epochs, paper.stage2_start) == (8, 6)  # paper: 150 of 200
    cpu = resolve_schedule(override_schedule(cfg, torch.device("cpu"), epochs=1), torch.device("cpu"))
    assert (cpu.epochs, cpu.stage2_start) == (1, 0)
    explicit = resolve_schedule(override_schedule(cfg, torch.device("cpu"), epochs=10, stage2_start=9), torch.device("cpu"))
    assert explicit.stage2_start == 9
