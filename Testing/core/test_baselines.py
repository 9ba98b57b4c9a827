"""Training-free comparison methods: each must single out a bright spot inside the cord."""
from __future__ import annotations

import numpy as np
import pytest

from u2adcore.config import BaselineConfig, U2ADConfig
from u2adcore.methods.base import Method, MethodMaps
from u2adcore.methods.dbscan import DbscanMethod, dbscan_map, noise_distance
from u2adcore.methods.registry import available, get_method
from u2adcore.methods.robust import RobustZMethod, RunningMedianMethod, robust_z_map, running_median_prediction
from u2adcore.methods.slic import SlicMethod, slic_map
from u2adcore.methods.zscore import ZScoreMethod, zscore_map
from u2adcore.volume.preprocess import PreparedSlice, SliceTransform


def _cord(seed: int = 0, lesion_value: float = 0.85, dark: bool = False):
    """64 x 64: background 0.2, a vertical cord (0.5 + noise), one 6 x 6 lesion inside it."""
    rng = np.random.default_rng(seed)
    image = np.full((64, 64), 0.2)
    roi = np.zeros((64, 64), bool)
    roi[4:60, 26:38] = True
    image[roi] = 0.5 + rng.normal(0, 0.02, roi.sum())
    lesion = np.zeros_like(roi)
    lesion[30:36, 29:35] = True
    image[lesion] = lesion_value
    if dark:
        image[10:16, 29:35] = 0.1  # a dark spot (not a T2 hyperintensity)
    return image.astype(np.float32), roi, lesion


def _prepared(image, roi, lesion) -> PreparedSlice:
    t = SliceTransform(0, (0.0, 0.0), 1.0, 64, (1.0, 1.0), (64, 64), 0.0, 1.0)
    return PreparedSlice(image=image, roi=roi, transform=t, lesion=lesion, study_id="synthetic")


def _separates(amap, roi, lesion) -> None:
    assert np.all(amap[~roi] == 0)
    assert amap[lesion].min() > np.quantile(amap[roi & ~lesion], 0.99)


def test_zscore_hand_values_and_one_sidedness():
    image = np.array([[0.0, 1.0, 2.0, 3.0, 9.0]])
    roi = np.array([[False, True, True, True, False]])
    amap = zscore_map(image, roi, hyperintense_only=True)
    # ROI values 1, 2, 3: mean 2, population std sqrt(2/3)
    np.testing.assert_allclose(amap, [[0, 0, 0, 1 / np.sqrt(2 / 3), 0]], rtol=1e-6)
    two = zscore_map(image, roi, hyperintense_only=False)
    assert two[0, 1] == pytest.approx(two[0, 3])
    assert not zscore_map(np.ones((3, 3)), np.ones((3, 3), bool), True).any()  # flat cord: no evidence


def test_zscore_finds_the_bright_spot_not_the_dark_one():
    image, roi, lesion = _cord(dark=True)
    amap = zscore_map(image, roi, hyperintense_only=True)
    _separates(amap, roi, lesion)
    assert not amap[10:16, 29:35].any()
    assert zscore_map(image, roi, hyperintense_only=False)[10:16, 29:35].min() > 2


def test_slic_flags_lesion_superpixels_only():
    image, roi, lesion = _cord()
    cfg = BaselineConfig()
    amap = slic_map(image, roi, compactness=cfg.slic_compactness, pixels_per_segment=cfg.slic_pixels_per_segment,
                    z_threshold=cfg.slic_z_threshold, hyperintense_only=True)
    assert np.all(amap[~roi] == 0)
    assert np.all((amap == 0) | (amap > cfg.slic_z_threshold))
    assert (amap[lesion] > 0).mean() > 0.5  # most lesion pixels fall in flagged superpixels
    assert (amap[roi & ~lesion] > 0).mean() < 0.1


def test_noise_distance_hand_values():
    np.testing.assert_allclose(noise_distance(np.array([5.0, -1.0, 2.4]), np.array([0.0, 1.0, 2.0])), [3.0, -1.0, 0.4])
    np.testing.assert_allclose(noise_distance(np.array([3.0]), np.array([1.0])), [2.0])


def test_dbscan_scores_only_noise_points():
    image, roi, lesion = _cord()
    cfg = BaselineConfig()
    amap = dbscan_map(image, roi, eps=cfg.dbscan_eps, min_fraction=cfg.dbscan_min_fraction, hyperintense_only=True)
    _separates(amap, roi, lesion)
    assert (amap[roi & ~lesion] == 0).mean() > 0.9  # the cord's bulk is clustered


def test_methods_follow_the_protocol():
    image, roi, lesion = _cord()
    slices = [_prepared(image, roi, lesion), _prepared(*_cord(seed=1)[:2], lesion)]
    for cls in (ZScoreMethod, SlicMethod, DbscanMethod):
        method = cls(config=U2ADConfig())
        assert isinstance(method, Method) and method.thresholds is None
        maps = method.maps(slices)
        assert len(maps) == 2 and all(isinstance(m, MethodMaps) for m in maps)
        assert maps[0].error.shape == (64, 64) and maps[0].error.dtype == np.float32
        assert maps[0].recon is None and maps[0].eu is None
        assert method.describe()["method"] == method.name
        assert maps[0].error[lesion].mean() > 5 * maps[0].error[roi & ~lesion].mean()


def test_every_method_scores_hyperintensity_only():
    """A dark spot must never score: the same polarity for every training-free method."""
    image, roi, lesion = _cord(dark=True)
    dark = np.zeros_like(roi)
    dark[10:16, 29:35] = True
    prepared = [_prepared(image, roi, lesion)]
    for name in ("zscore", "slic", "dbscan", "robustz", "runmedian"):
        m = get_method(name).maps(prepared)[0]
        assert m.error[dark].max() == 0, name
        assert m.error[lesion].mean() > 0, name
        if m.residual is not None:  # a signed residual: negative over the dark spot
            assert m.residual[dark].mean() < 0, name


def test_robust_z_hand_values_and_resistance_to_the_lesion():
    image = np.array([[0.0, 1.0, 2.0, 3.0, 10.0, 5.0]])
    roi = np.array([[False, True, True, True, True, False]])
    # ROI 1, 2, 3, 10: median 2.5, |dev| 1.5, .5, .5, 7.5 -> MAD 1.0
    np.testing.assert_allclose(robust_z_map(image, roi, True), [[0, 0, 0, 0.5 / 1.4826, 7.5 / 1.4826, 0]], rtol=1e-5)
    image, roi, lesion = _cord()
    _separates(robust_z_map(image, roi, True), roi, lesion)
    assert not robust_z_map(np.ones((3, 3)), np.ones((3, 3), bool), True).any()


def test_running_median_follows_a_slow_trend_and_leaves_a_short_lesion_out():
    image, roi, lesion = _cord()
    rows = np.arange(64)[:, None]
    image = np.where(roi, image + 0.004 * rows, image).astype(np.float32)  # a bias along the cord
    image[lesion] = 0.85 + 0.004 * 33
    pred = running_median_prediction(image, roi, window_rows=21)
    trend = 0.5 + 0.004 * rows
    far = roi & ((rows < 22) | (rows >= 44)) & (rows >= 14) & (rows < 50)  # away from the lesion and the cord's ends
    assert np.abs(pred - trend)[far].max() < 0.01
    # a lesion shifts the running median by a few rows of trend only: its rows are predicted as cord
    assert np.abs(pred - trend)[roi & (rows >= 22) & (rows < 44)].max() < 0.04
    assert (image - pred)[lesion].min() > 0.25
    np.testing.assert_array_equal(pred[~roi], image[~roi])
    m = RunningMedianMethod(config=U2ADConfig()).maps([_prepared(image, roi, lesion)])[0]
    window = round(BaselineConfig().runmedian_window_mm)  # grid spacing 1 mm
    np.testing.assert_allclose(m.residual, np.where(roi, image - running_median_prediction(image, roi, window), 0), atol=1e-6)
    _separates(m.error, roi, lesion)


def test_robust_baselines_are_registered_next_to_the_others():
    assert {"zscore", "slic", "dbscan", "dae", "robustz", "runmedian"} <= set(available())
    assert isinstance(get_method("robustz"), RobustZMethod) and isinstance(get_method("runmedian"), RunningMedianMethod)
