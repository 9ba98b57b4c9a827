"""EU-guided masking and AU candidates (METHOD.md §5): behaviour measured over many draws."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
import pytest
import torch
from scipy.stats import spearmanr

from u2adcore.uncertainty.guided import au_candidates, eu_guided_mask, patch_sums, scale_scores

L = 64  # an 8 x 8 patch grid is enough for the masking statistics
DRAWS = 4000


def _one_image(n_roi: int = 40, seed: int = 0):
    """ROI = the first n_roi patches; EU rises 1e-4..1e-3 in a shuffled order (tiny, like real EU)."""
    rng = np.random.default_rng(seed)
    roi = torch.zeros(1, L, dtype=torch.bool)
    roi[0, :n_roi] = True
    eu = torch.zeros(1, L, dtype=torch.float64)
    eu[0, :n_roi] = torch.from_numpy(rng.permutation(np.linspace(1e-4, 1e-3, n_roi)))
    return roi, eu


def _frequencies(roi, eu, temperature, scaling="mean", exclude=None, seed=0):
    """Mask frequency per patch over DRAWS independent draws (one batched call)."""
    g = torch.Generator().manual_seed(seed)
    rep = lambda t: None if t is None else t.expand(DRAWS, -1)
    masks = eu_guided_mask(rep(roi), rep(eu), 0.5, temperature, scaling, g, exclude=rep(exclude))
    return masks, masks.double().mean(dim=0)


def test_high_eu_patches_are_masked_more_often():
    roi, eu = _one_image()
    masks, freq = _frequencies(roi, eu, temperature=1.0)
    in_roi = roi[0]
    rho = spearmanr(eu[0, in_roi].numpy(), freq[in_roi].numpy()).statistic
    assert rho > 0.9
    order = torch.argsort(eu[0, in_roi])
    f = freq[in_roi][order]
    assert f[-10:].mean() > f[:10].mean() + 0.2  # top-EU quarter vs bottom quarter
    assert not masks[:, ~in_roi].any()
    assert (masks.sum(dim=1) == 20).all()


def test_higher_temperature_flattens_the_frequencies():
    roi, eu = _one_image()
    spread = {}
    for t in (0.3, 1.0, 10.0):
        _, freq = _frequencies(roi, eu, temperature=t)
        spread[t] = freq[roi[0]].std().item()
    assert spread[0.3] > spread[1.0] > spread[10.0]
    # T = 10 is close to uniform masking at ratio 0.5: the binomial noise over 4000 draws is
    # 0.008, the remaining guidance at T = 10 about 0.03.
    assert spread[10.0] < 0.05


def test_scaling_makes_temperature_independent_of_the_eu_magnitude():
    roi, eu = _one_image()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for scaling in ("mean", "zscore"):
        a = eu_guided_mask(roi, eu, 0.5, 1.0, scaling, g1)
        b = eu_guided_mask(roi, eu * 1e4, 0.5, 1.0, scaling, g2)
        assert torch.equal(a, b)
    s = scale_scores(eu, roi, "zscore")[0, roi[0]]
    assert s.mean().abs() < 1e-9 and abs(s.std(unbiased=False).item() - 1.0) < 1e-9
    s = scale_scores(eu, roi, "mean")[0, roi[0]]
    assert abs(s.mean().item() - 1.0) < 1e-9


def test_constant_eu_gives_uniform_masking():
    roi, _ = _one_image()
    _, freq = _frequencies(roi, torch.where(roi, 5e-4, 0.0).double(), temperature=1.0)
    assert torch.allclose(freq[roi[0]], torch.full((40,), 0.5, dtype=torch.float64), atol=0.04)


def test_excluded_patches_are_never_masked_and_k_is_kept():
    roi, eu = _one_image()
    exclude = torch.zeros(1, L, dtype=torch.bool)
    exclude[0, [3, 17, 29]] = True
    masks, _ = _frequencies(roi, eu, temperature=1.0, exclude=exclude)
    assert not masks[:, exclude[0]].any()
    assert (masks.sum(dim=1) == 20).all()


def test_when_too_few_patches_remain_all_remaining_are_masked():
    roi, eu = _one_image(n_roi=10)
    exclude = torch.zeros(1, L, dtype=torch.bool)
    exclude[0, :7] = True  # 3 remain, k = 5
    g = torch.Generator().manual_seed(0)
    mask = eu_guided_mask(roi, eu, 0.5, 1.0, "mean", g, exclude=exclude)
    assert mask[0].nonzero().flatten().tolist() == [7, 8, 9]


def test_images_are_masked_independently_with_their_own_k():
    roi = torch.zeros(3, L, dtype=torch.bool)
    roi[0, :40] = True
    roi[1, 10:13] = True  # k = round(1.5) = 2
    eu = torch.rand(3, L, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = eu_guided_mask(roi, eu, 0.5, 1.0, "mean", torch.Generator().manual_seed(1))
    assert mask.sum(dim=1).tolist() == [20, 2, 0]
    assert not (mask & ~roi).any()


def test_bad_temperature_is_refused():
    roi, eu = _one_image()
    with pytest.raises(ValueError, match="temperature must be positive"):
        eu_guided_mask(roi, eu, 0.5, 0.0, "mean", torch.Generator())


def test_patch_sums_follow_the_row_major_patch_index():
    m = np.random.default_rng(0).random((2, 32, 32))
    sums = patch_sums(torch.from_numpy(m), 8).numpy()
    assert sums.shape == (2, 16)
    assert np.isclose(sums[1, 1 * 4 + 3], m[1, 8:16, 24:32].sum())


def _blob_au():
    """AU on a 40 x 40 slice: low noise in a cord band, three blobs of known size and height,
    an isolated bright pixel (too small) and a huge value outside the cord (ignored)."""
    rng = np.random.default_rng(1)
    au = rng.random((40, 40)) * 0.01
    roi = np.zeros((40, 40), dtype=bool)
    roi[:, 10:30] = True
    au[2:4, 12:14] = 0.5  # 4 px, sum 2.0
    au[10:13, 12:15] = 0.3  # 9 px, sum 2.7  -> best by sum
    au[20:22, 20:25] = 0.2  # 10 px, sum 2.0 (ties with the first)
    au[29:32, 19:22] = 0.0
    au[30, 20] = 3.0  # 1 px, the highest sum, but below min_size
    au[35:37, 25:27] = 0.05  # 4 px, sum 0.2 -> fourth, dropped by top_k=3
    au[5, 2] = 5.0  # outside the cord
    return au, roi


def test_au_candidates_keep_the_top_components_inside_the_cord():
    au, roi = _blob_au()
    labels = au_candidates(au, roi, percentile=90, top_k=3, min_size=2, score="sum")
    assert labels[11, 13] == 1
    assert {labels[2, 12], labels[20, 22]} == {2, 3}
    assert labels[30, 20] == 0 and labels[35, 25] == 0 and labels[5, 2] == 0
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_au_candidates_score_rule_is_a_setting():
    au, roi = _blob_au()
    labels = au_candidates(au, roi, top_k=1, score="mean_sum")  # mean x sum favours the 0.5 blob
    assert labels[2, 12] == 1 and labels[11, 13] == 0


def test_au_candidates_on_an_empty_roi_is_empty():
    au, _ = _blob_au()
    assert not au_candidates(au, np.zeros_like(au, dtype=bool)).any()


def test_adaptation_takes_au_candidates_on_the_eroded_cord():
    from u2adcore.config import AdaptConfig
    from u2adcore.uncertainty.adapt import slice_candidates

    roi = np.zeros((40, 40), dtype=bool)
    roi[4:36, 14:24] = True
    rng = np.random.default_rng(0)
    au = np.where(roi, rng.uniform(0.0, 0.02, roi.shape), 0.0)
    ring = roi & ~ndimage.binary_erosion(roi)
    au[ring] = rng.uniform(0.3, 0.5, ring.sum())  # the partial-volume boundary: high AU in every study
    au[18:22, 17:21] = 0.3  # a lesion inside the cord
    labels = slice_candidates(au, roi, AdaptConfig())
    assert labels[19, 18] > 0
    assert not labels[ring].any()
    unroded = slice_candidates(au, roi, AdaptConfig(au_erode_px=0))
    assert unroded[ring].any()  # without the erosion the ring wins
