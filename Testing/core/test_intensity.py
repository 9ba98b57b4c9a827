"""Intensity standardisation from the visible cord (model/intensity.py)."""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from u2adcore.model.intensity import erode, median_over, row_profile, visible_core
from u2adcore.scoring.maps import analysis_roi


def _cord(h=64, w=32, rows=(8, 56), cols=(12, 20)):
    roi = torch.zeros(1, 1, h, w, dtype=torch.bool)
    roi[..., rows[0] : rows[1], cols[0] : cols[1]] = True
    return roi


def test_erosion_matches_the_scored_cord():
    rng = np.random.default_rng(0)
    blob = ndimage.binary_dilation(rng.random((40, 40)) > 0.8, iterations=2)
    for px in (1, 2):
        ours = erode(torch.as_tensor(blob)[None, None], px)[0, 0].numpy()
        assert np.array_equal(ours, analysis_roi(blob, px))


def test_row_profile_follows_a_bias_field_along_the_cord():
    roi = _cord()
    rows = torch.arange(64, dtype=torch.float32)
    x = (0.3 * (1 + 0.01 * rows))[None, None, :, None].expand(1, 1, 64, 32).clone()
    prof = row_profile(x, roi, window=4)[0, 0, :, 0]
    inner = slice(12, 52)  # rows whose whole window lies on the cord: a linear ramp's median is its centre
    assert torch.allclose(prof[inner], x[0, 0, inner, 16], atol=1e-6)
    # beyond the cord the level is held at the nearest row that has one
    assert float(prof[0]) == float(prof[8 - 4]) and float(prof[63]) == float(prof[55 + 4])
    # a single per-image median would be off by up to a fifth at the ends
    assert float((median_over(x, roi)[0, 0, 0, 0] - x[0, 0, 8, 16]).abs()) > 0.05 * 0.3


def test_a_bright_spot_shorter_than_half_the_window_leaves_the_level_alone():
    roi = _cord()
    x = torch.full((1, 1, 64, 32), 0.3)
    x[..., 30:34, 12:20] = 0.9  # 4 bright rows in a window of 17
    prof = row_profile(x, roi, window=8)[0, 0, :, 0]
    assert torch.allclose(prof[8:56], torch.tensor(0.3))


def test_the_eroded_core_keeps_the_partial_volume_ring_out():
    roi = _cord()
    x = torch.full((1, 1, 64, 32), 0.3)
    ring = roi & ~erode(roi, 1)
    x[ring] = 0.6  # CSF partial volume at the cord's edge
    hidden = torch.zeros_like(roi)
    core = visible_core(roi, hidden, 1)
    assert torch.allclose(row_profile(x, core, window=4)[0, 0, 8:56, 0], torch.tensor(0.3))
    assert float(row_profile(x, roi, window=4)[0, 0, 20, 0]) > 0.3  # without erosion the ring leaks in


def test_visible_core_falls_back_for_thin_or_hidden_cords():
    thin = _cord(cols=(15, 16))  # one pixel wide: erosion removes it all
    hidden = torch.zeros_like(thin)
    assert torch.equal(visible_core(thin, hidden, 1), thin)
    cord = _cord()
    assert torch.equal(visible_core(cord, torch.ones_like(cord), 1), cord)  # nothing visible: the whole cord
    both = torch.cat([thin, cord])
    out = visible_core(both, torch.zeros_like(both), 1)
    assert torch.equal(out[0], thin[0]) and torch.equal(out[1], erode(cord, 1)[0])


def test_an_image_without_cord_gets_a_unit_level():
    x = torch.rand(2, 1, 16, 16)
    roi = torch.zeros_like(x, dtype=torch.bool)
    roi[0, 0, 4:12, 6:10] = True
    prof = row_profile(x, roi, window=2)
    assert prof.shape == (2, 1, 16, 1)
    assert torch.equal(prof[1], torch.ones(1, 16, 1))
    assert bool(torch.isfinite(prof).all())
