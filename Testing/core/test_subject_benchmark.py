"""The benchmark's study set (benchmarks/subject_benchmark.py): a healthy and a lesioned copy of
each slice that differ by the lesion, and the same normal variation in both."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import subject_benchmark as sb  # noqa: E402

from u2adcore.data.phantom import make_phantom  # noqa: E402
from u2adcore.volume.orientation import to_canonical  # noqa: E402


def _args():
    return argparse.Namespace(seed=0, offsets=[0], confounded_offsets=[0], contrasts=[0.5])


def _canon(img):
    return sitk.GetArrayFromImage(to_canonical(img))


def test_each_slice_is_scored_healthy_and_with_lesions_and_the_copies_share_their_variation():
    bases = {"phantom_5000": (sb.with_empty_lesion(make_phantom(5000).to_study("phantom_5000")), "phantom")}
    for variant in ("plain", "confounded"):
        healthy, lesioned = sb.build_variant(variant, bases, _args(), lambda m: None)
        assert healthy.pair == lesioned.pair and healthy.slice_index == lesioned.slice_index
        assert not healthy.truth.label and lesioned.truth.label
        assert np.array_equal(_canon(healthy.study.cord), _canon(lesioned.study.cord))
        lesion = _canon(lesioned.study.lesion) > 0
        assert lesion.any() and not (lesion & ~(_canon(lesioned.study.cord) > 0)).any()
        diff = np.abs(_canon(lesioned.study.image) - _canon(healthy.study.image)) > 1e-3
        assert diff[lesion].mean() > 0.9
        if variant == "plain":  # nothing but the lesion differs
            assert not (diff & ~lesion).any()
        assert not (_canon(healthy.study.lesion) > 0).any()


def test_faint_lesions_rise_by_the_asked_fraction_of_the_gap():
    from u2adcore.data.pseudo import insert_pseudo_lesions

    base = sb.with_empty_lesion(make_phantom(5001).to_study("p"))
    i = int(np.argmax((_canon(base.cord) > 0).sum(axis=(1, 2))))
    lesioned = insert_pseudo_lesions(base, np.random.default_rng(0), slices=[i]).study
    a = sb.at_gap_fraction(base, lesioned, i, 0.1)
    b = sb.at_gap_fraction(base, lesioned, i, 0.3)
    lesion = _canon(lesioned.lesion) > 0
    rise_a = (_canon(a.image) - _canon(base.image))[lesion].mean()
    rise_b = (_canon(b.image) - _canon(base.image))[lesion].mean()
    assert rise_a > 0 and np.isclose(rise_b / rise_a, 3.0, rtol=1e-3)
