"""Monte-Carlo inference (METHOD.md §4): the pass schedules, and μ / EU / AU from a real EdgeMAE."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from u2adcore.model.masking import masked_count
from u2adcore.uncertainty.schedules import make_plan


def n_to_mask(n: int, ratio: float) -> int:
    return int(masked_count(torch.tensor([n]), ratio)[0])


def _roi_patches() -> np.ndarray:
    """ROI sizes that hit the schedule's corner cases: rounds whose boundaries fall inside a pass
    (4 -> k 3, 12 -> k 9), k = n (1, 2), a long cord (150), and an image without ROI."""
    sizes = [150, 4, 12, 1, 2, 7, 0]
    rp = np.zeros((len(sizes), 1024), dtype=bool)
    rng = np.random.default_rng(5)
    for b, n in enumerate(sizes):
        rp[b, rng.choice(1024, n, replace=False)] = True
    return rp


@pytest.mark.parametrize("schedule", ["balanced", "independent"])
@pytest.mark.parametrize("K", [1, 3, 10])
def test_every_roi_patch_is_counted_exactly_k_times_and_every_pass_masks_exactly_k(schedule, K):
    rp = _roi_patches()
    plan = make_plan(rp, 0.75, K, schedule, np.random.default_rng(0))
    assert not (plan.counted & ~plan.mask).any()
    for b in range(rp.shape[0]):
        mine = plan.image == b
        n = int(rp[b].sum())
        assert (plan.mask[mine].sum(axis=1) == n_to_mask(n, 0.75)).all()
        assert not plan.mask[mine][:, ~rp[b]].any()
        counts = plan.counted[mine].sum(axis=0)
        assert (counts[rp[b]] == K).all() and (counts[~rp[b]] == 0).all()
    assert plan.passes_per_image(rp.shape[0])[-1] == 0


def test_balanced_schedule_needs_ceil_k_n_over_k_passes():
    rp = _roi_patches()
    passes = make_plan(rp, 0.75, 10, "balanced", np.random.default_rng(0)).passes_per_image(rp.shape[0])
    for b, n in enumerate(rp.sum(axis=1)):
        k = n_to_mask(int(n), 0.75)
        assert passes[b] == (-(-10 * n // k) if n else 0)
    assert passes[0] == 14  # the paper's K = 10 at r = 0.75


def test_independent_schedule_needs_more_passes_than_balanced():
    rp = _roi_patches()[:1]
    rng = np.random.default_rng(0)
    independent = [make_plan(rp, 0.75, 10, "independent", rng).n_passes for _ in range(5)]
    assert min(independent) > 14


def test_balanced_masks_vary_between_rounds():
    """Where 3 · n is a multiple of k, one order repeated would mask the same sets every 3 rounds."""
    rp = np.zeros((1, 1024), dtype=bool)
    rp[0, :12] = True  # k = 9: a repeated order gives only 4 distinct masks
    plan = make_plan(rp, 0.75, 10, "balanced", np.random.default_rng(0))
    distinct = {m.tobytes() for m in plan.mask}
    assert len(distinct) > plan.n_passes // 2


def test_plans_are_reproducible_from_the_seed():
    rp = _roi_patches()
    a = make_plan(rp, 0.75, 10, "balanced", np.random.default_rng(7))
    b = make_plan(rp, 0.75, 10, "balanced", np.random.default_rng(7))
    c = make_plan(rp, 0.75, 10, "balanced", np.random.default_rng(8))
    assert np.array_equal(a.mask, b.mask) and np.array_equal(a.counted, b.counted)
    assert not np.array_equal(a.mask, c.mask)


def test_bad_schedule_and_k_are_refused():
    rp = _roi_patches()
    with pytest.raises(ValueError, match="unknown Monte-Carlo schedule 'sweep'"):
        make_plan(rp, 0.75, 10, "sweep", np.random.default_rng(0))
    with pytest.raises(ValueError, match="K must be at least 1"):
        make_plan(rp, 0.75, 0, "balanced", np.random.default_rng(0))


# --- Monte-Carlo inference with a real (tiny, fixed-seed) EdgeMAE ---------------------------

K = 10


@pytest.fixture(scope="module")
def model():
    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.model.presets import model_config

    torch.manual_seed(0)
    return EdgeMAE(model_config("tiny", img_size=64)).eval()


@pytest.fixture(scope="module")
def slices():
    """Six smooth 64 x 64 images with cord-like ROI bands of different widths, and one without ROI."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    x = np.stack([gaussian_filter(rng.random((64, 64)), 2) for _ in range(7)])
    x = ((x - x.min()) / (x.max() - x.min()))[:, None].astype(np.float32)
    roi = np.zeros_like(x, dtype=bool)
    for i in range(6):
        roi[i, :, 4:60, 26 + i : 38 - i // 2] = True
    return x, roi


def test_balanced_and_independent_schedules_give_the_same_statistics(model, slices):
    """Both schedules sample masks that are uniform k-subsets containing the patch, so μ agrees
    within the sampling noise of two K-sample means, E[(μa − μb)²] ≤ 2σ²/K ≈ 2·EU/(K − 1) (it
    is lower for balanced, whose K masks are less alike than independent ones). A schedule that
    masked 0.6 or 0.9 instead of 0.75 scores 45-70 on this statistic. EU of the independent
    schedule (ddof 0, K i.i.d. samples) is (K − 1)/K of the population variance; the balanced
    design's co-masking counts vary less, which puts its EU between that and the population
    variance: the expected ratio lies in [1, K/(K − 1)] = [1, 1.11], ± about 5 % sampling noise
    over three seeds."""
    from u2adcore.uncertainty.montecarlo import mc_inference

    x, roi = slices[0][:6], slices[1][:6]
    inside = roi[:, 0]
    diff, eu_bal, eu_ind = [], [], []
    for seed in range(3):
        a = mc_inference(model, x, roi, K=K, schedule="balanced", seed=seed)
        b = mc_inference(model, x, roi, K=K, schedule="independent", seed=100 + seed)
        diff.append(((a.mu - b.mu) ** 2)[inside].mean())
        eu_bal.append(a.eu[inside].mean())
        eu_ind.append(b.eu[inside].mean())
        assert (a.n_passes == 14).all() and (b.n_passes > 14).all()
    eu_mean = (np.mean(eu_bal) + np.mean(eu_ind)) / 2
    assert eu_mean > 0
    assert np.mean(diff) / (2 * eu_mean / (K - 1)) < 1.5
    assert 0.9 < np.mean(eu_bal) / np.mean(eu_ind) < 1.3


@pytest.mark.parametrize("schedule", ["balanced", "independent"])
def test_maps_equal_the_mean_and_variance_of_the_counted_reconstructions(model, slices, schedule):
    """Batched accumulation against a pass-by-pass recomputation of the same plan."""
    from u2adcore.model.patches import patchify, roi_patches, unpatchify
    from u2adcore.uncertainty.montecarlo import mc_inference

    x, roi = slices[0][1:2], slices[1][1:2]
    res = mc_inference(model, x, roi, K=3, schedule=schedule, seed=4, batch_size=5)
    rp = roi_patches(torch.from_numpy(roi), 8)
    plan = make_plan(rp.numpy(), 0.75, 3, schedule, np.random.default_rng(4))
    xt = torch.from_numpy(x)
    recs = []
    with torch.no_grad():
        for mask, counted in zip(plan.mask, plan.counted):
            out = model(xt, rp, torch.from_numpy(mask)[None])
            recs.append(np.where(counted[:, None], patchify(out.image, 8)[0].numpy(), np.nan))
    inside = rp[0].numpy()
    stack = np.stack(recs)[:, inside]  # [passes, ROI patches, 64], NaN where not counted
    assert (np.isfinite(stack[..., 0]).sum(axis=0) == 3).all()
    mu = patchify(xt, 8)[0].numpy().astype(np.float64)
    var = np.zeros_like(mu)
    mu[inside], var[inside] = np.nanmean(stack, axis=0), np.nanvar(stack, axis=0)
    as_map = lambda p: unpatchify(torch.from_numpy(p[None]).float(), 8)[0, 0].numpy()
    np.testing.assert_allclose(res.mu[0], as_map(mu), atol=2e-6)
    np.testing.assert_allclose(res.eu[0], as_map(var), atol=2e-7)
    np.testing.assert_allclose(res.au[0], np.abs(x[0, 0] - res.mu[0]), atol=2e-6)


def test_outside_roi_patches_mu_is_the_input_and_uncertainty_zero(model, slices):
    from u2adcore.model.patches import patch_to_pixels, roi_patches
    from u2adcore.uncertainty.montecarlo import mc_inference

    x, roi = slices
    res = mc_inference(model, x, roi, K=2, seed=0)
    outside = ~patch_to_pixels(roi_patches(torch.from_numpy(roi), 8), 8)[:, 0].numpy()
    assert np.array_equal(res.mu[outside], x[:, 0][outside])
    assert not res.eu[outside].any() and not res.au[outside].any()
    assert res.n_passes[-1] == 0 and np.array_equal(res.mu[-1], x[-1, 0])
    assert res.eu[:-1][~outside[:-1]].max() > 0


def test_results_do_not_depend_on_the_batch_size_and_follow_the_seed(model, slices):
    from u2adcore.uncertainty.montecarlo import mc_inference

    x, roi = slices[0][:3], slices[1][:3]
    one = mc_inference(model, x, roi, K=3, seed=1, batch_size=1)
    big = mc_inference(model, x, roi, K=3, seed=1, batch_size=64)
    np.testing.assert_allclose(one.mu, big.mu, atol=1e-5)
    np.testing.assert_allclose(one.eu, big.eu, atol=1e-7)
    again = mc_inference(model, x, roi, K=3, seed=1, batch_size=64)
    other = mc_inference(model, x, roi, K=3, seed=2, batch_size=64)
    assert np.array_equal(big.mu, again.mu) and np.array_equal(big.eu, again.eu)
    assert not np.array_equal(big.mu, other.mu)


def test_model_mode_is_given_back(model, slices):
    from u2adcore.uncertainty.montecarlo import mc_inference

    x, roi = slices[0][:1], slices[1][:1]
    model.train()
    try:
        mc_inference(model, x, roi, K=1)
        assert model.training
    finally:
        model.eval()
    mc_inference(model, x, roi, K=1)
    assert not model.training


def test_bad_shapes_are_refused(model, slices):
    from u2adcore.uncertainty.montecarlo import mc_inference

    x, roi = slices
    with pytest.raises(ValueError, match=r"shape \[B, 1, H, W\]"):
        mc_inference(model, x[:, 0], roi[:, 0])


def test_a_higher_inference_ratio_keeps_one_cord_patch_visible_and_needs_fewer_passes():
    rp = _roi_patches()  # sizes 150, 4, 12, 1, 2, 7, 0
    plan = make_plan(rp, 0.9, 10, "balanced", np.random.default_rng(0), keep_visible=True)
    for b, n in enumerate(rp.sum(axis=1)):
        n = int(n)
        masked = plan.mask[plan.image == b].sum(axis=1)
        k = n_to_mask(n, 0.9) if n < 2 else min(n_to_mask(n, 0.9), n - 1)
        assert (masked == k).all()  # 4 patches: 3 hidden, not all 4
        counts = plan.counted[plan.image == b].sum(axis=0)
        assert (counts[rp[b]] == 10).all()
    assert plan.passes_per_image(rp.shape[0])[0] == 12  # ceil(10 * 150 / 135), against 14 at 0.75
    plain = make_plan(rp, 0.9, 10, "balanced", np.random.default_rng(0))  # without keep_visible: all 4 hidden
    assert (plain.mask[plain.image == 1].sum(axis=1) == 4).all()


def test_the_inference_mask_ratio_is_used_and_checked(model, slices):
    from u2adcore.uncertainty.montecarlo import mc_inference

    x, roi = slices[0][:2], slices[1][:2]
    default = mc_inference(model, x, roi, K=10, seed=1)
    assert np.array_equal(default.mu, mc_inference(model, x, roi, K=10, seed=1, mask_ratio=None).mu)  # None = the model's ratio
    high = mc_inference(model, x, roi, K=10, seed=1, mask_ratio=0.9)
    assert high.n_passes.sum() < default.n_passes.sum() and not np.array_equal(high.mu, default.mu)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="inference mask ratio must lie strictly between 0 and 1"):
            mc_inference(model, x, roi, K=3, mask_ratio=bad)
