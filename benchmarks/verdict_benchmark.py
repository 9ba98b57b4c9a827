"""Verdict figures of the shipped model (issue 9, "Done when"): how often `u2ad detect` says "no"
with no candidates on healthy real cords, and "yes" on cords with moderate pseudo-lesions.

The shipped model as is (no adaptation), its default scoring, K = 10. Studies: the real healthy
cords of benchmarks/healthy_cords.py (errsm_23, errsm_24, sct_example + its sct_testing crop,
TPTBox; several slices; manual masks and masks dilated by one voxel), each slice also with 1-2
pseudo-lesions at contrasts 0.3, 0.5 ("moderate") and 1.0 x the inserted cord-to-CSF signal.
These are the subjects the shipped thresholds were calibrated on, so the thresholds here are
calibrated leave-one-subject-out, exactly as scripts/calibrate_default_model.py does (same
healthy-only rule, same phantoms): the held-out subject's studies are scored with thresholds
from the other subjects' healthy studies only.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/verdict_benchmark.py --out /tmp/verdict [--model OTHER.pt]
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "U2ADCore"))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "scripts"))

from healthy_cords import healthy_slices, with_pseudo_lesion  # noqa: E402

CONTRASTS = (0.3, 0.5, 1.0)
MODERATE = 0.5


def loso_rows(healthy, lesioned, contrast_of: dict, cfg, fprs: dict) -> list[dict]:
    """Every real subject's studies scored with thresholds calibrated (healthy-only rule) on the
    other subjects' healthy studies and the phantoms: one row per study."""
    from u2adcore.evaluation.healthy import calibrate_healthy, rescore

    rows = []
    for subj in sorted({s.subject for s in healthy if s.subject != "phantom"}):
        th = calibrate_healthy([s for s in healthy if s.subject != subj], cfg, **fprs)
        for s in [h for h in healthy if h.subject == subj] + [les for les in lesioned if les.subject == subj]:
            sc = rescore(s, cfg, th)
            lesion = s.lesion if s.lesion is not None and s.lesion.any() else None
            on_lesion = bool(lesion is not None and sc.labels.max() > 0 and (lesion & (sc.labels > 0)).any())
            rows.append({"id": s.id, "subject": subj, "lesion": lesion is not None, "contrast": contrast_of.get(s.id),
                         "mask": "dilated" if "dilated" in s.id else "manual", "patient_score": sc.patient_score,
                         "threshold": th.patient, "yes": bool(sc.patient_positive), "n_candidates": int(sc.labels.max()),
                         "candidate_on_lesion": on_lesion})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--realspine", type=Path, default=REPO.parent / "shared/data/realspine")
    ap.add_argument("--mc", type=int, default=10)
    ap.add_argument("--pixel-fpr", type=float, default=None, help="default: the shipped calibration's")
    ap.add_argument("--model", type=Path, default=None, help="a checkpoint to measure instead of the shipped model")
    args = ap.parse_args()

    from calibrate_default_model import FPRS, calibration_items
    from u2adcore.config import U2ADConfig
    from u2adcore.detect import detection_config
    from u2adcore.evaluation.healthy import infer_studies, wilson_interval
    from u2adcore.methods.registry import get_method

    if args.pixel_fpr is None:
        args.pixel_fpr = FPRS["pixel_fpr"]
    cfg = U2ADConfig()
    cfg.inference.mc_samples, cfg.inference.device = args.mc, "cpu"
    method = get_method("u2ad", config=cfg, checkpoint=args.model)
    model_sha = method.loaded.sha256
    method.thresholds = None
    cfg = detection_config(cfg, method)
    cache = args.out / f"inferred_{model_sha[:12]}_k{args.mc}.pkl"  # inference is the slow part: kept for reruns
    if cache.exists():
        healthy, lesioned, contrast_of = pickle.loads(cache.read_bytes())
    else:
        healthy = infer_studies(calibration_items(args.realspine), method, cfg)
        rng = np.random.default_rng(11)
        lesion_items = []
        for s in healthy_slices(args.realspine):
            for contrast in CONTRASTS:
                les = with_pseudo_lesion(s, rng, contrast)
                if les is not None:
                    lesion_items.append(((les.study, les.slice_index, les.subject), contrast))
        lesioned = infer_studies([item for item, _ in lesion_items], method, cfg)
        contrast_of = {st.id: c for st, (_, c) in zip(lesioned, lesion_items)}
        args.out.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((healthy, lesioned, contrast_of)))
    fprs = dict(FPRS, pixel_fpr=args.pixel_fpr)

    rows = loso_rows(healthy, lesioned, contrast_of, cfg, fprs)

    def frac(sel, key) -> str:
        k, n = sum(key(r) for r in sel), len(sel)
        lo, hi = wilson_interval(k, n)
        return f"{k}/{n} = {k / n:.0%} (95 % CI {lo:.0%}–{hi:.0%})" if n else "—"

    h = [r for r in rows if not r["lesion"]]
    lines = [f"{'Shipped model' if args.model is None else args.model} sha256 {model_sha[:12]}, K = {args.mc}, leave-one-subject-out thresholds "
             f"(patient/segment FPR {fprs['patient_fpr']:g}, pixel FPR {fprs['pixel_fpr']:g}), "
             f"{len({r['subject'] for r in rows})} real subjects", "",
             "| studies | result |", "|---|---|",
             f"| healthy: \"no\" and no candidates | {frac(h, lambda r: not r['yes'] and r['n_candidates'] == 0)} |",
             f"| healthy, manual masks | {frac([r for r in h if r['mask'] == 'manual'], lambda r: not r['yes'] and r['n_candidates'] == 0)} |",
             f"| healthy, masks dilated by one voxel | {frac([r for r in h if r['mask'] == 'dilated'], lambda r: not r['yes'] and r['n_candidates'] == 0)} |"]
    for c in CONTRASTS:
        sel = [r for r in rows if r["lesion"] and r["contrast"] == c]
        name = f"pseudo-lesions, contrast {c:g}" + (" (moderate)" if c == MODERATE else "")
        lines.append(f"| {name}: \"yes\" | {frac(sel, lambda r: r['yes'])} |")
        lines.append(f"| {name}: a candidate on the lesion | {frac(sel, lambda r: r['candidate_on_lesion'])} |")
    for subj in sorted({r["subject"] for r in rows}):
        hs = [r for r in h if r["subject"] == subj]
        ls = [r for r in rows if r["lesion"] and r["subject"] == subj and r["contrast"] == MODERATE]
        lines.append(f"| {subj}: healthy quiet / moderate lesion \"yes\" | "
                     f"{sum(not r['yes'] and r['n_candidates'] == 0 for r in hs)}/{len(hs)} / {sum(r['yes'] for r in ls)}/{len(ls)} |")
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table)
    (args.out / "rows.json").write_text(json.dumps({"model_sha256": model_sha, "rows": rows}, indent=1) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
