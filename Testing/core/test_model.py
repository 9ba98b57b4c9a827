"""EdgeMAE: patch geometry, forward semantics (token selection, padding, context band), loss."""
from __future__ import annotations

import pytest
import torch

from u2adcore.config import ModelConfig
from u2adcore.model.edgemae import EdgeMAE, EdgeMAEOutput, sobel_magnitude
from u2adcore.model.masking import random_mask
from u2adcore.model.patches import dilate_patches, patch_to_pixels, patchify, roi_patches, select_tokens, unpatchify
from u2adcore.model.pos_embed import sincos_2d
from u2adcore.model.presets import PRESETS, check_preset, model_config, preset_mismatch

S = 64  # tiny images keep these tests fast; the geometry rules are the same at 256


def _batch(n_rows=(4, 2, 0), seed=0):
    """Images with cord-like vertical ROI strips of different lengths (one image without ROI)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(len(n_rows), 1, S, S, generator=g)
    roi = torch.zeros(len(n_rows), 1, S, S, dtype=torch.bool)
    for i, rows in enumerate(n_rows):
        roi[i, 0, 8 : 8 + 8 * rows, 27:37] = True
    return x, roi


def _model(band=None, seed=0):
    torch.manual_seed(seed)
    return EdgeMAE(model_config("tiny", img_size=S, context_band=band)).eval()


def test_patchify_order_is_row_major_and_invertible():
    x = torch.arange(2 * 1 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    p = patchify(x, 8)
    assert p.shape == (2, 4, 64)
    # patch 1 = row 0, col 1 -> pixels [0:8, 8:16]
    assert torch.equal(p[0, 1], x[0, 0, 0:8, 8:16].reshape(-1))
    assert torch.equal(p[1, 2], x[1, 0, 8:16, 0:8].reshape(-1))
    assert torch.equal(unpatchify(p, 8), x)


def test_roi_patch_needs_only_one_pixel_and_maps_back_to_pixels():
    roi = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    roi[0, 0, 15, 0] = True  # last row of patch (1, 0)
    rp = roi_patches(roi, 8)
    assert rp.tolist() == [[False, False, True, False]]
    pix = patch_to_pixels(rp, 8)
    assert pix.shape == (1, 1, 16, 16) and int(pix.sum()) == 64 and bool(pix[0, 0, 8:, :8].all())


def test_dilate_and_select_tokens():
    m = torch.zeros(1, 25, dtype=torch.bool)
    m[0, 12] = True  # centre of a 5x5 grid
    assert int(dilate_patches(m, 1).sum()) == 9 and int(dilate_patches(m, 2).sum()) == 25
    keep = torch.tensor([[True, False, True, False], [False, False, False, True]])
    ids, valid = select_tokens(keep)
    assert ids.shape == (2, 2)
    assert ids[0].tolist() == [0, 2] and valid[0].tolist() == [True, True]
    assert ids[1, 0].item() == 3 and valid[1].tolist() == [True, False]


def test_sincos_embedding_is_fixed_and_distinct():
    e = sincos_2d(32, 8)
    assert e.shape == (64, 32)
    assert torch.equal(e, sincos_2d(32, 8))
    assert torch.cdist(e, e).add(torch.eye(64) * 1e3).min() > 0.1  # no two patches share a position code
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_2d(30, 8)


def test_sobel_magnitude_values():
    ramp = (torch.arange(16, dtype=torch.float32) * 0.1).expand(16, 16).reshape(1, 1, 16, 16) / 4
    # slope 0.025/px: central difference 0.05 weighted by 1+2+1 -> 0.2 in the interior
    assert torch.allclose(sobel_magnitude(ramp)[0, 0, 4:12, 4:12], torch.full((8, 8), 0.2), atol=1e-6)
    step = torch.zeros(1, 1, 16, 16)
    step[..., 8:] = 1.0
    assert sobel_magnitude(step).max() == 1.0  # clipped (raw magnitude is 4)
    assert sobel_magnitude(torch.full((1, 1, 16, 16), 0.7)).abs().max() < 1e-6


def test_presets_sizes_and_mismatch_detection():
    small = EdgeMAE(model_config("small"))
    n = sum(p.numel() for p in small.parameters())
    assert 2.5e6 < n < 3.5e6  # "about 3 M parameters" (research code)
    assert model_config("paper").depth == 24
    assert ModelConfig() == model_config("small")  # the default config is the small preset
    bad = model_config("small")
    bad.depth = 6
    assert preset_mismatch(bad) == ["depth=6 (preset 'small' has 12)"]
    with pytest.raises(ValueError, match="does not match its preset"):
        check_preset(bad)
    with pytest.raises(ValueError, match="fixes"):
        model_config("small", depth=3)
    with pytest.raises(ValueError, match="unknown model preset"):
        model_config("huge")
    assert set(PRESETS) == {"tiny", "small", "paper", "compact"}
    assert 0.7e6 < sum(p.numel() for p in EdgeMAE(model_config("compact")).parameters()) < 1.2e6


@pytest.mark.parametrize("band", [None, 1])
def test_forward_shapes_range_and_batch_invariance(band):
    model = _model(band)
    x, roi = _batch()
    rp = roi_patches(roi, 8)
    mask = random_mask(rp, 0.75, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x, rp, mask)
        assert out.image.shape == x.shape and out.edge.shape == x.shape
        assert out.image.min() >= 0 and out.image.max() <= 1
        # Padding to the batch's largest token count must not leak into any image.
        for i in range(len(x)):
            alone = model(x[i : i + 1], rp[i : i + 1], mask[i : i + 1])
            assert torch.allclose(alone.image, out.image[i : i + 1], atol=1e-5)
            assert torch.allclose(alone.edge, out.edge[i : i + 1], atol=1e-5)


def test_masked_pixels_are_hidden_from_the_model():
    model = _model(band=1)
    x, roi = _batch((4,))
    rp = roi_patches(roi, 8)
    mask = random_mask(rp, 0.75, torch.Generator().manual_seed(2))
    hidden = patch_to_pixels(mask, 8)
    x2 = torch.where(hidden, torch.rand_like(x), x)
    with torch.no_grad():
        a, b = model(x, rp, mask), model(x2, rp, mask)
    assert not torch.equal(x, x2)
    # Nothing of the hidden pixels reaches any output: not the reconstruction, not the edges.
    assert torch.allclose(a.image, b.image, atol=1e-6)
    assert torch.allclose(a.edge, b.edge, atol=1e-6)


NORMS = ("visible_cord", "visible_profile")


def _norm_model(norm="visible_cord", band=1):
    torch.manual_seed(0)
    return EdgeMAE(model_config("tiny", img_size=S, context_band=band, intensity_norm=norm, norm_window=4)).eval()


@pytest.mark.parametrize("norm", NORMS)
def test_visible_cord_normalisation_makes_the_model_scale_equivariant(norm):
    model = _norm_model(norm)
    x, roi = _batch((4, 2, 0))
    x = x * 0.1  # headroom: the scaled outputs stay inside [0, 1], so nothing is clipped
    rp = roi_patches(roi, 8)
    mask = random_mask(rp, 0.75, torch.Generator().manual_seed(4))
    with torch.no_grad():
        a = model(x, rp, mask, roi=roi)
        b = model(0.6 * x, rp, mask, roi=roi)
        plain = _model(band=1)
        pa, pb = plain(x, rp, mask), plain(0.6 * x, rp, mask)
    # The network sees the same normalised input, so a darker study gets a proportionally darker
    # reconstruction (the plain model does not scale with it).
    assert torch.allclose(b.image, 0.6 * a.image, atol=1e-5)
    assert torch.allclose(b.edge, 0.6 * a.edge, atol=1e-5)
    assert not torch.allclose(pb.image, 0.6 * pa.image, atol=1e-3)
    with pytest.raises(ValueError, match="pixel cord mask"):
        model(x, rp, mask)


@pytest.mark.parametrize("norm", NORMS)
def test_visible_cord_normalisation_never_reads_the_hidden_pixels(norm):
    model = _norm_model(norm)
    x, roi = _batch((4,))
    rp = roi_patches(roi, 8)
    mask = random_mask(rp, 0.75, torch.Generator().manual_seed(2))
    hidden = patch_to_pixels(mask, 8)
    x2 = torch.where(hidden, 3 * x, x).clamp(0, 1)
    with torch.no_grad():
        a, b = model(x, rp, mask, roi=roi), model(x2, rp, mask, roi=roi)
    assert not torch.equal(x, x2)
    assert torch.allclose(a.image, b.image, atol=1e-6) and torch.allclose(a.edge, b.edge, atol=1e-6)


def test_context_band_passes_far_patches_through():
    model = _model(band=1)
    x, roi = _batch((2, 0))
    rp = roi_patches(roi, 8)
    tokens = model.token_patches(rp)
    far = ~patch_to_pixels(tokens, 8)
    with torch.no_grad():
        out = model(x, rp, random_mask(rp, 0.75, torch.Generator().manual_seed(3)))
    assert int(tokens[1].sum()) == 0 and int(tokens[0].sum()) == 4 * 4  # 2 x 2 ROI patches grown by 1 patch
    assert torch.equal(out.image[far], x[far])
    assert torch.equal(out.edge[far], sobel_magnitude(x)[far])


def test_mask_outside_roi_is_refused():
    model = _model()
    x, roi = _batch((2,))
    rp = roi_patches(roi, 8)
    with pytest.raises(ValueError, match="outside the ROI"):
        model(x, rp, ~rp)


def test_loss_value_and_no_nan_without_roi():
    model = _model()
    x, roi = _batch((4, 0))
    rp = roi_patches(roi, 8)
    mask = random_mask(rp, 0.75, torch.Generator().manual_seed(4))
    out = EdgeMAEOutput(image=(x + 0.1), edge=sobel_magnitude(x))
    w = model.loss_weights(roi, mask)
    assert int(w.sum()) == int((roi & patch_to_pixels(mask, 8)).sum()) > 0
    assert model.loss(x, roi, out, mask).item() == pytest.approx(0.01, rel=1e-4)
    out_e = EdgeMAEOutput(image=x.clone(), edge=sobel_magnitude(x) + 0.2)
    assert model.loss(x, roi, out_e, mask).item() == pytest.approx(0.1 * 0.04, rel=1e-4)
    # A batch with no ROI at all: loss 0 and finite gradients.
    model.train()
    x0, roi0 = _batch((0, 0))
    rp0 = roi_patches(roi0, 8)
    mask0 = random_mask(rp0, 0.75)
    loss = model.loss(x0, roi0, model(x0, rp0, mask0), mask0)
    loss.backward()
    assert loss.item() == 0.0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_anchoring_matches_the_visible_cord_level_at_inference_only():
    torch.manual_seed(0)
    model = EdgeMAE(model_config("tiny", img_size=S, context_band=1, intensity_norm="visible_cord", anchor_visible=True))
    x, roi = _batch((4,))
    x = 0.2 + 0.1 * x
    rp = roi_patches(roi, 8)
    mask = random_mask(rp, 0.75, torch.Generator().manual_seed(5))
    visible = roi & ~patch_to_pixels(mask, 8)
    with torch.no_grad():
        anchored = model.eval()(x, rp, mask, roi=roi).image
        raw = model.train()(x, rp, mask, roi=roi).image
    assert torch.isclose(anchored[visible].median(), x[visible].median(), atol=1e-3)
    assert not torch.isclose(raw[visible].median(), x[visible].median(), atol=1e-2)
