"""Anomaly map, post-processing and segment/patient scores on hand-made arrays (METHOD.md §6)."""
from __future__ import annotations

import numpy as np
import pytest

from u2adcore.config import SEGMENTS, ScoringConfig, Thresholds
from u2adcore.scoring.curve import anocurve
from u2adcore.scoring.maps import analysis_roi, anomaly_map, postprocess, zero_bottom_fraction
from u2adcore.scoring.segments import (
    patient_score,
    patient_verdict,
    score_slice,
    segment_of_samples,
    segment_scores,
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


def test_score_slice_without_levels_still_scores_the_patient():
    roi = _cord()
    image = np.where(roi, 0.4, 0.1).astype(np.float32)
    error = np.where(roi, 0.02, 0.0).astype(np.float32)
    error[24:28, 30:35] = 0.4
    scored = score_slice(image, error, roi, {}, ScoringConfig(), spacing_mm=1.0)
    assert all(not s.known and s.score is None for s in scored.segments)
    assert scored.labels[25, 32] == 1
    peak_row = scored.curve.rows[np.argmax(scored.curve.values)]
    assert 24 <= peak_row < 28
    assert scored.patient_score == pytest.approx(scored.curve.values.max())
    assert scored.patient_positive is None
