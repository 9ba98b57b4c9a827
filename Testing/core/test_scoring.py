"""Anomaly map, post-processing and segment/patient scores on hand-made arrays (METHOD.md §6)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from u2adcore.config import SEGMENTS, InferenceConfig, ScoringConfig, Thresholds, paper_inference, paper_scoring, profile_scoring
from u2adcore.scoring.curve import anocurve
from u2adcore.scoring.maps import (
    analysis_roi,
    anomaly_map,
    healthy_spread,
    profile_baseline,
    normative_map,
    postprocess,
    zero_bottom_fraction,
)
from u2adcore.scoring.segments import (
    patient_score,
    patient_verdict,
    score_slice,
    segment_of_samples,
    segment_scores,
    scoring_signature,
    thresholds_for,
    top_segment,
)


def _cord(shape=(64, 64), cols=(28, 37), rows=(4, 60)) -> np.ndarray:
    roi = np.zeros(shape, dtype=bool)
    roi[rows[0] : rows[1], cols[0] : cols[1]] = True
    return roi


def test_anomaly_map_is_abs_error_inside_eroded_cord_only():
    roi = _cord()
    error = np.full(roi.shape, -0.3, dtype=np.float32)
    amap = anomaly_map(error, roi, erode_px=1)
    inner = analysis_roi(roi, 1)
    assert inner.sum() == (60 - 4 - 2) * (37 - 28 - 2)
    assert np.allclose(amap[inner], 0.3)
    assert np.all(amap[~inner] == 0)


def test_analysis_roi_keeps_a_cord_too_thin_to_erode():
    roi = np.zeros((16, 16), dtype=bool)
    roi[2:14, 7] = True
    assert np.array_equal(analysis_roi(roi, 1), roi)


def test_analysis_roi_erodes_a_thin_cord_as_far_as_it_survives():
    roi = np.zeros((16, 16), dtype=bool)
    roi[2:14, 6:9] = True  # 3 pixels wide: 2 pixels of erosion would empty it, 1 leaves its centre line
    assert np.array_equal(analysis_roi(roi, 2), analysis_roi(roi, 1))
    assert analysis_roi(roi, 2).sum() == 10


def test_bottom_fraction_zeroes_exactly_that_many_lowest_values_even_with_ties():
    roi = _cord()
    rng = np.random.default_rng(0)
    amap = np.where(roi, rng.integers(1, 4, roi.shape).astype(np.float32), 0)  # many ties
    out = zero_bottom_fraction(amap, roi, 0.2)
    n = roi.sum()
    assert (out[roi] == 0).sum() == round(0.2 * n)
    # the zeroed ones are the lowest: every kept value >= every zeroed original value
    zeroed = roi & (out == 0)
    assert amap[zeroed].max() <= out[roi & (out > 0)].min()
    assert np.array_equal(out[roi & (out > 0)], amap[roi & (out > 0)])


def test_postprocess_ranks_a_bright_blob_first_and_keeps_three_components():
    roi = _cord()
    amap = np.zeros(roi.shape, dtype=np.float32)
    amap[roi] = 0.01
    amap[10:13, 30:33] = 0.5  # bright blob
    amap[30:32, 30:32] = 0.3
    amap[45:47, 30:32] = 0.2
    amap[55, 31] = 0.1
    # background is the lowest 20 %+ of the ROI -> all zeroed, leaving four separate components
    post = postprocess(amap, roi, bottom_fraction=0.9, top_k=3)
    assert set(np.unique(post.labels)) == {0, 1, 2, 3}
    assert np.all(post.labels[10:13, 30:33] == 1)
    assert np.all(post.labels[30:32, 30:32] == 2)
    assert post.labels[55, 31] == 0 and post.amap[55, 31] == 0
    assert np.allclose(post.amap[10:13, 30:33], 0.5)


def test_diagonal_neighbours_are_one_component():
    roi = _cord()
    amap = np.zeros(roi.shape, dtype=np.float32)
    amap[20, 30] = amap[21, 31] = amap[22, 32] = 1.0
    post = postprocess(amap, roi, bottom_fraction=0.0, top_k=3)
    assert post.labels[20, 30] == post.labels[22, 32] == 1
    assert post.labels.max() == 1


def test_segment_scores_take_the_curve_peak_inside_each_span_and_mark_unknowns():
    roi = _cord()
    amap = np.where(roi, 0.1, 0).astype(np.float32)
    amap[30, 28:37] = 0.8
    curve = anocurve(amap, roi)
    spans = {"C2-C3": (4.0, 20.0), "C3-C4": (20.0, 36.0), "C4-C5": (36.0, 52.0), "C5-C6": None}
    segs = segment_scores(curve, spans, Thresholds(patient=0.5, segment=0.5))
    by = {s.name: s for s in segs}
    assert [s.name for s in segs] == list(SEGMENTS)
    assert by["C3-C4"].score == pytest.approx(0.8) and by["C3-C4"].positive is True
    assert by["C2-C3"].score == pytest.approx(0.1) and by["C2-C3"].positive is False
    assert by["C5-C6"].known is False and by["C5-C6"].score is None and by["C5-C6"].positive is None
    assert by["C7-T1"].known is False  # missing from the mapping = unknown, never invented
    assert by["C3-C4"].start_mm == pytest.approx(16.0) and by["C3-C4"].end_mm == pytest.approx(32.0)
    assert top_segment(segs).name == "C3-C4"
    names = segment_of_samples(curve, segs)
    assert names[int(np.flatnonzero(curve.rows == 30)[0])] == "C3-C4"
    assert names[int(np.flatnonzero(curve.rows == 20)[0])] == "C3-C4"  # border row goes to the lower segment
    assert names[-1] == ""  # rows 52-59 lie in no known segment


def test_patient_score_and_verdict():
    roi = _cord()
    amap = np.where(roi, 0.1, 0).astype(np.float32)
    amap[40, 28:37] = 0.6
    curve = anocurve(amap, roi)
    assert patient_score(curve) == pytest.approx(0.6)
    assert patient_verdict(0.6, Thresholds(patient=0.59)) is True
    assert patient_verdict(0.6, Thresholds(patient=0.6)) is False  # positive means strictly above
    assert patient_verdict(0.6, None) is None and patient_verdict(0.6, Thresholds()) is None


def test_score_slice_in_paper_mode_reproduces_the_published_post_processing_without_levels():
    roi = _cord()
    image = np.where(roi, 0.4, 0.1).astype(np.float32)
    error = np.where(roi, 0.02, 0.0).astype(np.float32)
    error[24:28, 30:35] = 0.4
    scored = score_slice(image, error, roi, {}, paper_scoring(), spacing_mm=1.0, residual=-error)
    roi_a = analysis_roi(roi, 1)
    expected = postprocess(anomaly_map(error, roi, 1), roi_a, 0.2, 3)
    assert np.array_equal(scored.amap, expected.amap) and np.array_equal(scored.labels, expected.labels)
    assert all(not s.known and s.score is None for s in scored.segments)
    assert scored.labels[25, 32] == 1
    peak_row = scored.curve.rows[np.argmax(scored.curve.values)]
    assert 24 <= peak_row < 28
    assert scored.patient_score == pytest.approx(scored.curve.values.max())
    assert scored.patient_positive is None


def test_normative_map_ignores_a_uniform_offset_of_mu():
    roi = _cord()
    rng = np.random.default_rng(0)
    image = np.where(roi, 0.4 + 0.0 * rng.normal(size=roi.shape), 0.1)
    for offset in (-0.2, 0.0, 0.15):
        assert not normative_map(image - (image + offset), roi, 1, "none").any()


def test_normative_map_keeps_a_bright_insert_and_ignores_dark_deviations():
    roi = _cord()
    rng = np.random.default_rng(1)
    residual = np.where(roi, 0.05 + rng.normal(0, 0.01, roi.shape), 0)  # an offset mu plus noise
    residual[20:24, 30:35] += 0.2  # brighter than predicted: a lesion
    residual[40:44, 30:35] -= 0.3  # darker than predicted: never a T2 hyperintensity
    amap = normative_map(residual, roi, 1, "none")
    assert amap[20:24, 30:35].min() > 0.15
    assert np.all(amap[40:44, 30:35] == 0)
    assert np.all(amap[~analysis_roi(roi, 1)] == 0) and amap.min() >= 0
    scaled = normative_map(residual, roi, 1, "healthy", spread=[0.01])
    assert np.allclose(scaled, amap / 0.01, atol=1e-3)
    by_depth = normative_map(residual, roi, 1, "healthy", spread=[0.02, 0.01])  # the edge noisier than the core
    edge = analysis_roi(roi, 1) & ~analysis_roi(roi, 2)
    assert np.allclose(by_depth[edge], amap[edge] / 0.02, atol=1e-3)
    assert np.allclose(by_depth[analysis_roi(roi, 2)], amap[analysis_roi(roi, 2)] / 0.01, atol=1e-3)
    assert np.array_equal(normative_map(residual, roi, 1, "healthy", spread=None), amap)  # uncalibrated: unscaled
    mad = normative_map(residual, roi, 1, "slice_mad")
    assert mad[20:24, 30:35].min() > 10  # the insert is many slice MADs above the cord


def _slice_with_insert(offset: float = 0.03):
    roi = _cord()
    rng = np.random.default_rng(2)
    image = np.where(roi, 0.4, 0.1).astype(np.float32)
    residual = np.where(roi, offset + rng.normal(0, 0.01, roi.shape), 0).astype(np.float32)
    residual[24:30, 30:35] += 0.2
    return image, roi, residual


def test_candidates_only_above_the_pixel_threshold_and_the_minimum_area():
    image, roi, residual = _slice_with_insert()
    residual[50, 32] += 0.5  # one bright pixel: below the minimum area
    th = Thresholds(patient=0.01, pixel=0.1, residual_spread=[1.0])
    scored = score_slice(image, np.abs(residual), roi, {}, ScoringConfig(), spacing_mm=1.0, thresholds=th, residual=residual)
    assert scored.patient_positive is True
    assert scored.labels.max() == 1 and np.all(scored.labels[25:29, 31:34] == 1)
    assert scored.labels[50, 32] == 0
    assert scored.amap[50, 32] > 0.4  # the map itself is not thresholded: candidates never change scores


def test_no_candidates_when_the_patient_verdict_is_no_or_without_a_pixel_threshold():
    image, roi, residual = _slice_with_insert()
    for th in (Thresholds(patient=5.0, pixel=0.1), Thresholds(patient=0.01), None):
        scored = score_slice(image, np.abs(residual), roi, {}, ScoringConfig(), spacing_mm=1.0, thresholds=th, residual=residual)
        assert scored.labels.max() == 0
        assert scored.patient_score > 0.1  # the insert still scores; only its outline is withheld


def test_patient_score_comes_from_the_cervical_segments_when_levels_are_known():
    image, roi, residual = _slice_with_insert()
    residual[6:9, 29:36] += 0.6  # a brighter spot above C2-C3 (brainstem side)
    spans = {"C2-C3": (20.0, 30.0), "C3-C4": (30.0, 40.0)}
    scored = score_slice(image, np.abs(residual), roi, spans, ScoringConfig(), spacing_mm=1.0, residual=residual)
    assert scored.patient_score == pytest.approx(max(s.score for s in scored.segments if s.score is not None))
    assert scored.patient_score < scored.curve.values.max()
    whole = score_slice(image, np.abs(residual), roi, spans, ScoringConfig(patient_from="cord"), spacing_mm=1.0, residual=residual)
    assert whole.patient_score == pytest.approx(whole.curve.values.max())


def test_healthy_spread_is_the_median_centred_residual_per_depth():
    roi = _cord()
    rng = np.random.default_rng(3)
    inner = analysis_roi(roi, 1)
    edge = inner & ~analysis_roi(roi, 2)
    residual = np.where(inner, rng.normal(0.1, 0.01, roi.shape), 0)
    residual[edge] = 0.1 + rng.choice([-0.05, 0.05], edge.sum())  # a noisier edge
    spread = healthy_spread([residual], [roi], 1, max_depth=3)
    assert spread[0] == pytest.approx(0.05, abs=0.01)
    assert spread[1] == pytest.approx(0.01 * 0.674, rel=0.3) and spread[2] == pytest.approx(0.01 * 0.674, rel=0.3)


def test_the_profile_centring_removes_a_biased_rim_and_keeps_a_focal_lesion():
    """A rim brighter along the whole cord (partial volume, a too-wide mask) is the rim's normal:
    the running profile per depth removes it, the slice median does not; a lesion shorter than
    half the window stands out either way."""
    roi = np.zeros((80, 40), bool)
    roi[5:75, 12:28] = True
    rng = np.random.default_rng(0)
    residual = np.where(roi, rng.normal(0, 0.01, roi.shape), 0.0)
    rim = roi & ~ndimage.binary_erosion(roi)
    residual[rim] += 0.08  # the whole rim, every row
    residual[38:44, 18:23] += 0.08  # a focal lesion in the core
    slice_map = normative_map(residual, roi, 0, "none", centre="slice")
    profile_map = normative_map(residual, roi, 0, "none", centre="profile", window=31)
    assert slice_map[rim].mean() > 0.06 and profile_map[rim].mean() < 0.01
    assert profile_map[38:44, 18:23].mean() > 0.06
    base = profile_baseline(residual, roi, 31)
    assert np.allclose(base[rim].mean(), 0.08, atol=0.01) and abs(base[40, 20]) < 0.01
    with pytest.raises(ValueError, match="unknown residual centring 'row'"):
        normative_map(residual, roi, 0, "none", centre="row")
    spread = healthy_spread([residual], [roi], 0, max_depth=3, centre="profile")
    assert spread[0] < 0.02  # the rim's bias is not counted as its spread


def test_erode_px_option_sets_the_scoring_and_paper_mode_keeps_one_pixel():
    import argparse

    from u2adcore.cli.options import add_scoring_arguments, apply_scoring_arguments
    from u2adcore.config import U2ADConfig

    p = argparse.ArgumentParser()
    add_scoring_arguments(p)
    cfg = U2ADConfig()
    apply_scoring_arguments(cfg, p.parse_args([]))
    assert cfg.scoring.erode_px == 2 and cfg.scoring.residual_centre == "slice"
    apply_scoring_arguments(cfg, p.parse_args(["--scoring", "paper"]))
    assert cfg.scoring.erode_px == 1
    apply_scoring_arguments(cfg, p.parse_args(["--erode-px", "1"]))
    assert cfg.scoring.erode_px == 1
    profiled = U2ADConfig()
    apply_scoring_arguments(profiled, p.parse_args(["--residual-centre", "profile", "--erode-px", "0"]))
    assert profiled.scoring == profile_scoring()
    with pytest.raises(SystemExit):
        p.parse_args(["--erode-px", "-1"])


def test_thresholds_apply_only_to_the_scoring_they_were_calibrated_with():
    cfg, inf = ScoringConfig(), InferenceConfig()
    th = Thresholds(patient=6.0, segment=5.0, pixel=4.0, residual_spread=[0.03], calibration={"scoring": scoring_signature(cfg, inf)})
    assert thresholds_for(th, cfg, inf) == (th, "")
    assert thresholds_for(None, cfg, inf) == (None, "")
    legacy = Thresholds(patient=6.0)  # a calibration that recorded no scoring is taken as it is
    assert thresholds_for(legacy, paper_scoring(), paper_inference()) == (legacy, "")
    dropped, note = thresholds_for(th, paper_scoring(), inf)
    assert (dropped.patient, dropped.segment, dropped.pixel) == (None, None, None)
    assert dropped.residual_spread == [0.03]  # the map stays in healthy spreads
    assert note.startswith("no verdict") and "residual 'normative' (now 'paper')" in note and "erode_px 2 (now 1)" in note
    # the inference mask ratio changes mu, so every score: another ratio drops the thresholds too
    dropped, note = thresholds_for(th, cfg, paper_inference())
    assert dropped.patient is None and note == ("no verdict: the model's thresholds were calibrated with mask_ratio 0.9 (now None); "
                                                "recalibrate with `u2ad calibrate` for these settings")
    before = {k: v for k, v in scoring_signature(cfg, inf).items() if k not in ("mask_ratio", "residual_centre", "centre_window_px")}
    older = Thresholds(patient=6.0, calibration={"scoring": before})  # calibrated before these settings existed
    assert thresholds_for(older, cfg, paper_inference()) == (older, "")  # = the model's own ratio and the slice median
    assert thresholds_for(older, cfg, inf)[0].patient is None
    assert "residual_centre 'slice' (now 'profile')" in thresholds_for(older, profile_scoring(), paper_inference())[1]
    assert thresholds_for(th, ScoringConfig(display_max=3.0, candidates="paper"), inf)[1] == ""  # no score changes
