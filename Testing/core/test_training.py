"""The training loop: determinism, learning, augmentation, progress, cancel, hooks, schedule, curves."""
from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch

from u2adcore.config import TrainConfig, U2ADConfig
from u2adcore.errors import Cancelled, InputError
from u2adcore.model.edgemae import EdgeMAE
from u2adcore.model.masking import RandomMasking
from u2adcore.model.presets import model_config
from u2adcore.progress import CancelToken
from u2adcore.training.augment import augment, gaussian_blur, scanner
from u2adcore.training.loop import RunInfo, epoch_batches, loss_curve_paths, train
from u2adcore.training.slices_data import SliceArrays, SliceInfo

S = 32


def tiny_data(n=8, seed=0) -> SliceArrays:
    """Smooth images with a brighter 'cord' strip; the ROI is the strip."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S] / S
    images, rois = [], []
    for _ in range(n):
        c = rng.uniform(0.4, 0.6)
        img = 0.3 + 0.2 * np.sin(6 * yy + rng.uniform(0, 3)) + 0.4 * (np.abs(xx - c) < 0.1)
        images.append(np.clip(img, 0, 1))
        rois.append(np.abs(xx - c) < 0.1)
    return SliceArrays(np.array(images, np.float32)[:, None], np.array(rois)[:, None], [SliceInfo(f"s{i // 2}", i % 2) for i in range(n)])


def tiny_model(seed=0) -> EdgeMAE:
    torch.manual_seed(seed)
    return EdgeMAE(model_config("tiny", img_size=S))


def cfg(**kw) -> TrainConfig:
    return dataclasses.replace(TrainConfig(epochs=1, batch_size=4, device="cpu"), **kw)


def test_same_seed_same_weights_after_two_steps():
    data = tiny_data()
    a, b, c = tiny_model(), tiny_model(), tiny_model()
    train(a, data, cfg(), strategy=RandomMasking())
    train(b, data, cfg(), strategy=RandomMasking())
    train(c, data, cfg(seed=1), strategy=RandomMasking())
    assert len(epoch_batches(len(data), 4, 0, 0)) == 2
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not all(torch.equal(sa[k], tiny_model().state_dict()[k]) for k in sa)


def test_loss_goes_down_and_schedule_steps():
    data = tiny_data(16)
    model = tiny_model()
    history = train(model, data, cfg(epochs=10, batch_size=8, lr=2e-3, lr_step_epochs=7, lr_gamma=0.1, augment=False),
                    strategy=RandomMasking())
    losses = history.losses
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:2])
    lrs = [r["lr"] for r in history.epochs]
    assert lrs[:7] == pytest.approx([2e-3] * 7) and lrs[7:] == pytest.approx([2e-4] * 3)


def test_augment_stays_in_range_and_changes_the_image():
    x = torch.from_numpy(tiny_data(4).images)
    y = augment(x, TrainConfig(), torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert torch.allclose(y.amin(dim=(1, 2, 3)), torch.zeros(4)) and torch.allclose(y.amax(dim=(1, 2, 3)), torch.ones(4))
    resid = (y - x).std().item()
    assert 0.08 < resid < 0.3  # noise std sqrt(0.02) = 0.14 before re-normalisation
    quiet = augment(x, TrainConfig(noise_var=0.0, brightness=(1, 1), contrast=(1, 1)), torch.Generator().manual_seed(0))
    assert torch.allclose(quiet, (x - x.amin((1, 2, 3), True)) / (x.amax((1, 2, 3), True) - x.amin((1, 2, 3), True)), atol=1e-6)


def test_scanner_augmentation_is_off_by_default_and_then_draws_no_random_numbers():
    x = torch.from_numpy(tiny_data(4).images)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert torch.equal(scanner(x, TrainConfig(), gen), x) and torch.equal(gen.get_state(), state)


def test_gaussian_blur_matches_scipy_per_image():
    from scipy.ndimage import gaussian_filter

    x = torch.from_numpy(tiny_data(3).images)
    sigmas = torch.tensor([0.0, 1.0, 2.0])
    y = gaussian_blur(x, sigmas).numpy()
    assert np.array_equal(y[0, 0], x[0, 0].numpy())  # sigma 0: unchanged
    for i in (1, 2):  # same kernel radius (3 x the largest sigma) and the same mirrored border
        expected = gaussian_filter(x[i, 0].numpy().astype(np.float64), float(sigmas[i]), mode="mirror", truncate=6.0 / float(sigmas[i]))
        assert np.abs(y[i, 0] - expected).max() < 1e-5


def test_gamma_and_bias_field_do_what_they_say():
    x = torch.from_numpy(tiny_data(4).images)
    squared = scanner(x, TrainConfig(gamma=(2.0, 2.0)), torch.Generator().manual_seed(0))
    assert torch.allclose(squared, x ** 2, atol=1e-6)
    biased = scanner(x, TrainConfig(bias_field=0.3), torch.Generator().manual_seed(0))
    again = scanner(x, TrainConfig(bias_field=0.3), torch.Generator().manual_seed(0))
    assert torch.equal(biased, again)  # seeded: the same field
    for i in range(4):  # log(y / x) is a plane a*u + b*v over the image with |a|, |b| <= 0.3
        keep = ((x[i, 0] > 0.05) & (biased[i, 0] < 1.0)).numpy()
        u, v = np.meshgrid(np.linspace(-1, 1, S), np.linspace(-1, 1, S), indexing="ij")
        design = np.stack([u[keep], v[keep]], axis=1)
        target = np.log(biased[i, 0].numpy()[keep] / x[i, 0].numpy()[keep])
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        assert np.abs(design @ coef - target).max() < 1e-4 and np.all(np.abs(coef) <= 0.3 + 1e-6)
        assert np.abs(coef).max() > 1e-3
    out = augment(x, TrainConfig(gamma=(0.7, 1.4), bias_field=0.3, blur_sigma=1.0), torch.Generator().manual_seed(1))
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_progress_events_and_loss_curve(tmp_path):
    data = tiny_data()
    events = []
    out = tmp_path / "m.pt"
    train(tiny_model(), data, cfg(epochs=2), strategy=RandomMasking(), progress=events.append, checkpoint_path=out,
          run_info=RunInfo(U2ADConfig(model=model_config("tiny", img_size=S)), data.summary()))
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds.count("step") == 4 and kinds.count("epoch") == 2 and kinds.count("checkpoint") == 2
    step = [e for e in events if e.kind == "step"][-1]
    assert step.loss > 0 and step.lr == pytest.approx(3e-3) and step.images_per_s > 0 and step.eta_s == 0
    assert step.fraction == 1.0 and step.stage == "random"
    csv_path, png_path = loss_curve_paths(out)
    rows = list(csv.DictReader(csv_path.open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(float(r["loss"]) > 0 for r in rows)
    assert png_path.read_bytes()[:4] == b"\x89PNG"


def test_cancel_within_one_step_keeps_last_epoch_checkpoint(tmp_path):
    from u2adcore.training.checkpoint import read_checkpoint

    data = tiny_data()
    token = CancelToken()
    steps = []

    def progress(ev):
        if ev.kind == "step":
            steps.append(ev)
            if ev.epoch == 1:
                token.cancel()

    out = tmp_path / "m.pt"
    with pytest.raises(Cancelled):
        train(tiny_model(), data, cfg(epochs=3), strategy=RandomMasking(), progress=progress, cancel=token,
              checkpoint_path=out, run_info=RunInfo(U2ADConfig(model=model_config("tiny", img_size=S)), data.summary()))
    assert len(steps) == 3  # two steps of epoch 0, one of epoch 1, then stopped
    assert read_checkpoint(out)["meta"]["epochs_done"] == 1


def test_epoch_hook_switches_strategy():
    data = tiny_data()
    seen = []

    class Half(RandomMasking):
        pass

    def hook(epoch, model):
        seen.append((epoch, model.training))
        return Half(0.5, name="half") if epoch == 1 else None

    history = train(tiny_model(), data, cfg(epochs=3), strategy=RandomMasking(), epoch_hook=hook)
    assert seen == [(0, True), (1, True), (2, True)]
    assert [r["stage"] for r in history.epochs] == ["random", "half", "half"]


def test_bad_inputs_are_refused():
    data = tiny_data()
    with pytest.raises(InputError, match="model expects 64 x 64"):
        train(EdgeMAE(model_config("tiny", img_size=64)), data, cfg(), strategy=RandomMasking())
    empty = SliceArrays(np.zeros((0, 1, S, S), np.float32), np.zeros((0, 1, S, S), bool), [])
    with pytest.raises(InputError, match="training set is empty"):
        train(tiny_model(), empty, cfg(), strategy=RandomMasking())
