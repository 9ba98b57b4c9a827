"""AnoCurve: mean anomaly across the cord at each position along it (METHOD.md §6)."""
from __future__ import annotations

import numpy as np
import pytest

from u2adcore.scoring.curve import anocurve


def test_row_curve_is_the_row_mean_inside_the_cord_and_skips_rows_without_cord():
    roi = np.zeros((40, 30), dtype=bool)
    roi[5:35, 10:20] = True
    roi[20, :] = False  # a gap in the mask: that row is not part of the curve
    amap = np.zeros(roi.shape, dtype=np.float32)
    amap[12, 10:15] = 1.0  # half the width at row 12
    amap[0, :] = 9.0  # outside the cord: ignored
    curve = anocurve(amap, roi, spacing_mm=1.0)
    assert 20.0 not in curve.rows and len(curve) == 29
    assert curve.rows[0] == 5 and curve.position_mm[0] == 0
    i = int(np.flatnonzero(curve.rows == 12)[0])
    assert curve.values[i] == pytest.approx(0.5)
    assert curve.values.sum() == pytest.approx(0.5)
    assert curve.position_of_row(12) == pytest.approx(7.0)
    assert curve.position_of_row(0) == pytest.approx(-5.0)  # extended beyond the cord's top


def _curved_cord(shape=(120, 120), radius=90.0, width=8.0):
    """A cord bent along a circle arc: rows cut it obliquely, the centreline does not."""
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    dist = np.hypot(rr - 60.0, cc + radius - 60.0)
    roi = (np.abs(dist - radius) <= width / 2) & (rr >= 10) & (rr < 110)
    return roi, rr, cc


def test_centreline_curve_localises_a_lesion_on_a_curved_cord_and_measures_arc_length():
    roi, rr, cc = _curved_cord()
    amap = np.zeros(roi.shape, dtype=np.float32)
    lesion = roi & (np.hypot(rr - 60.0, cc - 60.0) <= 4)  # the cord passes through (60, 60)
    assert lesion.sum() > 20
    amap[lesion] = 1.0
    curve = anocurve(amap, roi, method="centreline", centreline_sigma_mm=3.0)
    row_curve = anocurve(amap, roi, method="rows")
    # arc length along a bent cord exceeds its row extent
    assert curve.position_mm[-1] > row_curve.position_mm[-1]
    assert np.all(np.diff(curve.position_mm) > 0)
    peak_row = curve.rows[np.argmax(curve.values)]
    assert abs(peak_row - 60.0) <= 2.0
    # a uniform map gives a flat curve (each sample averages cord pixels only)
    flat = anocurve(np.where(roi, 0.25, 0).astype(np.float32), roi, method="centreline")
    assert np.allclose(flat.values, 0.25)


def test_unknown_curve_method_is_refused():
    roi = np.ones((4, 4), dtype=bool)
    with pytest.raises(ValueError, match="unknown AnoCurve method 'spline'"):
        anocurve(np.zeros((4, 4), np.float32), roi, method="spline")
