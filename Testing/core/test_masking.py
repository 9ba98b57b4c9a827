"""Masking: only ROI patches, exactly round(r * n_roi) per image, reproducible, unbiased."""
from __future__ import annotations

import pytest
import torch

from u2adcore.model.masking import RandomMasking, mask_top_k, masked_count, random_mask


def _roi(counts, L=64):
    rp = torch.zeros(len(counts), L, dtype=torch.bool)
    for i, n in enumerate(counts):
        rp[i, 10 : 10 + n] = True
    return rp


def test_masked_count_rounds_and_keeps_at_least_one():
    n = torch.tensor([0, 1, 2, 3, 4, 10, 54])
    assert masked_count(n, 0.75).tolist() == [0, 1, 2, 2, 3, 8, 40]  # round(1.5)=2, round(2.25)=2, round(7.5)=8
    assert masked_count(n, 0.01).tolist() == [0, 1, 1, 1, 1, 1, 1]
    assert masked_count(n, 1.0).tolist() == n.tolist()


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_exact_count_per_image_inside_roi(ratio):
    counts = [0, 1, 3, 7, 20, 33]
    rp = _roi(counts)
    rp[5] = torch.rand(64, generator=torch.Generator().manual_seed(0)) < 0.5  # a scattered ROI too
    for seed in range(5):
        mask = random_mask(rp, ratio, torch.Generator().manual_seed(seed))
        assert not (mask & ~rp).any()
        assert mask.sum(1).tolist() == masked_count(rp.sum(1), ratio).tolist()


def test_seeded_and_varied():
    rp = _roi([30, 30])
    a = random_mask(rp, 0.5, torch.Generator().manual_seed(1))
    b = random_mask(rp, 0.5, torch.Generator().manual_seed(1))
    c = random_mask(rp, 0.5, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # each image draws its own mask


def test_every_roi_patch_equally_likely():
    rp = _roi([20])
    g = torch.Generator().manual_seed(0)
    freq = torch.stack([random_mask(rp, 0.75, g)[0] for _ in range(2000)]).float().mean(0)
    assert torch.allclose(freq[rp[0]], torch.full((20,), 0.75), atol=0.04)
    assert freq[~rp[0]].max() == 0


def test_mask_top_k_takes_the_highest_scores_of_the_roi_only():
    rp = _roi([4])
    scores = torch.zeros(1, 64)
    scores[0, 11], scores[0, 13] = 5.0, 3.0
    scores[0, 40] = 100.0  # outside the ROI: must never be chosen
    mask = mask_top_k(scores, rp, 0.5)
    assert mask[0].nonzero().flatten().tolist() == [11, 13]


def test_random_masking_strategy():
    rp = _roi([8, 0])
    strategy = RandomMasking(0.75)
    mask = strategy(torch.tensor([3, 4]), rp, torch.Generator().manual_seed(0))
    assert strategy.name == "random"
    assert mask.dtype == torch.bool and mask.shape == rp.shape
    assert mask.sum(1).tolist() == [6, 0]
