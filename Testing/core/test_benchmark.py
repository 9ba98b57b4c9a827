"""The subject-disjoint benchmark's parts (evaluation.benchmark): folds by subject, the
adaptation sample, the grouped protocol and its tables."""
from __future__ import annotations

import numpy as np

from u2adcore.config import EvaluationConfig
from u2adcore.evaluation import benchmark as bm
from u2adcore.evaluation.calibrate import StudyRecord, Truth
from u2adcore.evaluation.protocol import cross_validate, cross_validate_folds, stratified_folds


def test_subject_folds_deal_real_subjects_first_and_keep_each_subject_whole():
    kinds = {"r1": "real", "r2": "real", "r3": "real", "r4": "real", **{f"p{i}": "phantom" for i in range(8)}}
    folds = bm.subject_folds(kinds, 4, seed=0)
    assert set(folds) == set(kinds)
    assert sorted(folds[s] for s in ("r1", "r2", "r3", "r4")) == [0, 1, 2, 3]
    assert np.bincount(list(folds.values())).tolist() == [3, 3, 3, 3]
    assert folds == bm.subject_folds(kinds, 4, seed=0)


def _bench(subject, pair, label):
    return bm.BenchStudy(study=None, truth=Truth(label=label), slice_index=0, subject=subject, kind="real", group="g", pair=pair)


def test_adaptation_sample_never_takes_both_copies_of_a_slice():
    pool = [_bench(f"s{k // 6}", f"s{k // 6}_{k // 2}", bool(k % 2)) for k in range(24)]
    for seed in range(5):
        chosen = bm.adaptation_sample(pool, 8, seed)
        assert len(chosen) == 8
        assert len({b.pair for b in chosen}) == 8
    assert len(bm.adaptation_sample(pool, 100, 0)) == 12  # one per slice at most


def _records(n_subjects=8, per=4, seed=0):
    rng = np.random.default_rng(seed)
    records, subjects = [], []
    for s in range(n_subjects):
        for k in range(per):
            label = bool(k % 2)
            score = float(rng.normal(1.0 if label else 0.0, 0.7))
            seg = {"C3-C4": score, "C4-C5": float(rng.normal(0, 0.5))}
            records.append(StudyRecord(id=f"s{s}_{k}", label=label, segments=frozenset({"C3-C4"}) if label else frozenset(),
                                       patient_score=score, segment_scores=seg))
            subjects.append(s)
    return records, np.array(subjects)


def test_grouped_protocol_keeps_subjects_on_one_side_and_adds_patient_auroc():
    records, subjects = _records()
    folds = subjects % 4
    res = bm.evaluate(records, folds, EvaluationConfig())
    assert len(res.folds) == 4
    for f in res.folds:
        held = {int(i.split("_")[0][1:]) for i in f.test_ids}
        assert all(subjects[k] in held for k, r in enumerate(records) if r.id in f.test_ids)
        assert held.isdisjoint({int(s) for s, ff in zip(subjects, folds) if ff != f.fold})
        assert 0.0 <= f.metrics["patient_auroc"] <= 1.0
    mean, std, n = bm.summary(res, "patient_auroc")
    assert n == 4 and mean > 0.6


def test_cross_validate_is_cross_validate_folds_with_stratified_folds():
    records, _ = _records(seed=1)
    cfg = EvaluationConfig(n_folds=4, seed=3)
    a = cross_validate(records, cfg)
    b = cross_validate_folds(records, stratified_folds([r.label for r in records], 4, 3), cfg)
    assert [f.metrics for f in a.folds] == [f.metrics for f in b.folds]


def test_table_reports_mean_and_fold_spread():
    records, subjects = _records()
    res = bm.evaluate(records, subjects % 4, EvaluationConfig())
    text = bm.table({"m": res}, ("patient_auroc", "segment_f1"))
    mean, std, _ = bm.summary(res, "patient_auroc")
    assert "| patient AUROC | segment F1 |" in text
    assert f"{mean:.3f} ± {std:.3f}" in text
