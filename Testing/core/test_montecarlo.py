"""Monte-Carlo inference (METHOD.md §4): the pass schedules, and μ / EU / AU from a real EdgeMAE."""
from __future__ import annotations

import numpy as np
import pytest

from u2adcore.uncertainty.schedules import make_plan, n_to_mask


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
