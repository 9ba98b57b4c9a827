"""The verdict benchmark's lesion cohorts (benchmarks/healthy_cords.py): a lesion "at 25 % of the
gap" rises by that fraction of its slice's cord-CSF gap, and edge lesions sit at the cord's surface."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from healthy_cords import healthy_slices, with_pseudo_lesion  # noqa: E402

from u2adcore.config import PseudoAnomalyConfig  # noqa: E402
from u2adcore.data.pseudo import slice_stats  # noqa: E402
from u2adcore.volume.orientation import to_canonical  # noqa: E402


def _canon(img):
    return sitk.GetArrayFromImage(to_canonical(img))


def test_gap_cohorts_rise_by_the_stated_fraction_of_the_gap_and_edge_lesions_touch_the_surface(realspine):
    s = healthy_slices(realspine, subjects=("errsm_23",), masks=("manual",))[0]
    canon = to_canonical(s.study.image)
    before, cord = _canon(s.study.image)[s.slice_index], _canon(s.study.cord)[s.slice_index] > 0
    st = slice_stats(before, cord, (canon.GetSpacing()[1], canon.GetSpacing()[0]), PseudoAnomalyConfig().csf_ring_mm, "errsm_23")
    for fraction in (0.15, 0.25):
        les = with_pseudo_lesion(s, np.random.default_rng(4), fraction, gap=True)
        lesion = _canon(les.study.lesion)[s.slice_index] > 0
        rise = (_canon(les.study.image)[s.slice_index] - before)[lesion].mean()
        assert lesion.any() and np.isclose(rise, fraction * (st.csf_mean - st.cord_mean), rtol=1e-4)
        assert les.study.id == f"{s.study.id}_lesion{fraction:g}"
    cols = np.arange(cord.shape[1])

    def off_centre(lesion):
        """Mean over the lesion's rows of |lesion centre - cord centre| / half the cord's width."""
        rows = np.flatnonzero(lesion.any(axis=1))
        return float(np.mean([abs(cols[lesion[r]].mean() - cols[cord[r]].mean()) / (cord[r].sum() / 2) for r in rows]))

    centred = _canon(with_pseudo_lesion(s, np.random.default_rng(4), 0.25, gap=True).study.lesion)[s.slice_index] > 0
    edge = _canon(with_pseudo_lesion(s, np.random.default_rng(4), 0.25, gap=True, placement="edge").study.lesion)[s.slice_index] > 0
    outside = np.pad(~cord, 1, constant_values=True)
    assert (edge & (outside[1:-1, :-2] | outside[1:-1, 2:])).any()  # an A-P neighbour outside the cord
    assert off_centre(edge) > 0.3 and off_centre(centred) < 0.25  # (0.42 and 0.19 with this seed)
