"""Scoring variants on the verdict benchmark's cached inference (leave-one-subject-out, 5 % healthy FPR).

Reuses benchmarks/verdict_benchmark.py's cache (run that first with the same --out); every variant
recalibrates the thresholds leave-one-subject-out with the healthy-only rule and scores the held-out
subject, so each row is what the shipped model would give with that scoring.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/sensitivity_variants.py --out /tmp/verdict [--lesions scaled] [--placement edge]
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "U2ADCore"))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))

import u2adcore.scoring.segments as seg  # noqa: E402
from u2adcore.scoring.curve import AnoCurve, anocurve  # noqa: E402

_orig_anocurve = seg.anocurve
_orig_slice_map = seg.slice_map


def patched(curve_sigma=0.0, reduce="mean", map_sigma=0.0):
    def slice_map(error, residual, roi, cfg, thresholds):
        amap = _orig_slice_map(error, residual, roi, cfg, thresholds)
        if map_sigma > 0:
            roi_a = seg.analysis_roi(roi, cfg.erode_px)
            w = ndimage.gaussian_filter(roi_a.astype(np.float64), map_sigma)
            v = ndimage.gaussian_filter(np.where(roi_a, amap, 0).astype(np.float64), map_sigma)
            amap = np.where(roi_a, v / np.maximum(w, 1e-6), 0).astype(np.float32)
        return amap

    def curve_fn(amap, roi, *, spacing_mm=1.0, method="rows", centreline_sigma_mm=5.0):
        if reduce == "mean":
            c = _orig_anocurve(amap, roi, spacing_mm=spacing_mm, method=method, centreline_sigma_mm=centreline_sigma_mm)
            rows, vals = c.rows, c.values
        else:
            rows = np.flatnonzero(roi.any(axis=1))
            vals = []
            for r in rows:
                v = np.sort(amap[r][roi[r]])[::-1]
                if reduce == "tophalf":
                    vals.append(v[: max(1, int(np.ceil(v.size / 2)))].mean())
                else:
                    vals.append(np.quantile(v, float(reduce)))
            vals = np.asarray(vals, dtype=np.float64)
            rows = rows.astype(np.float64)
        if curve_sigma > 0 and vals.size > 1:
            vals = ndimage.gaussian_filter1d(vals, curve_sigma / spacing_mm, mode="nearest")
        return AnoCurve(rows, (rows - rows[0]) * spacing_mm if rows.size else rows, vals, spacing_mm)

    return slice_map, curve_fn


# (name, ScoringConfig overrides, patched() arguments); erode_px is explicit in every row, the
# first row is the scoring before this comparison (erode_px 1), the erode_px 2 row the new default.
VARIANTS = [
    ("previous default (erode 1, row mean)", {}),
    ("AnoCurve smoothed along cord, sigma 2 mm", {"curve_sigma": 2.0}),
    ("AnoCurve smoothed along cord, sigma 3 mm", {"curve_sigma": 3.0}),
    ("AnoCurve smoothed along cord, sigma 5 mm", {"curve_sigma": 5.0}),
    ("AnoCurve = mean of top half across width", {"reduce": "tophalf"}),
    ("AnoCurve = median across width", {"reduce": "0.5"}),
    ("AnoCurve = 75th percentile across width", {"reduce": "0.75"}),
    ("AnoCurve = 90th percentile across width", {"reduce": "0.9"}),
    ("top half + sigma 3 mm", {"reduce": "tophalf", "curve_sigma": 3.0}),
    ("map 2D Gaussian sigma 1 px", {"map_sigma": 1.0}),
    ("map 2D Gaussian sigma 2 px", {"map_sigma": 2.0}),
    ("map sigma 1 px + curve sigma 3 mm", {"map_sigma": 1.0, "curve_sigma": 3.0}),
]
CONFIG_VARIANTS = [
    ("patient score over the whole cord", {"patient_from": "cord"}),
    ("AnoCurve along the centreline", {"curve": "centreline"}),
    ("erode 0 (whole mask)", {"erode_px": 0}),
    ("erode 2 (new default)", {"erode_px": 2}),
    ("erode 3", {"erode_px": 3}),
    ("profile centring, erode 0 (config.profile_scoring)", {"residual_centre": "profile", "erode_px": 0}),
    ("profile centring, erode 1", {"residual_centre": "profile", "erode_px": 1}),
]


def evaluate(healthy, lesioned, contrast_of, cfg, fprs):
    """Counts of one scoring: healthy quiet, then "yes" and a candidate on the lesion per cohort
    (keys yes<c> / cand<c> for each contrast c of the cache, faint to strong)."""
    from verdict_benchmark import loso_rows

    rows = [(r["lesion"], r["contrast"], r["yes"], r["n_candidates"], r["candidate_on_lesion"])
            for r in loso_rows(healthy, lesioned, contrast_of, cfg, fprs)]
    h = [r for r in rows if not r[0]]
    out = {"healthy": f"{sum(not r[2] and r[3] == 0 for r in h)}/{len(h)}"}
    for c in sorted(set(contrast_of.values())):
        sel = [r for r in rows if r[0] and r[1] == c]
        out[f"yes{c:g}"] = f"{sum(r[2] for r in sel)}/{len(sel)}"
        out[f"cand{c:g}"] = f"{sum(r[4] for r in sel)}/{len(sel)}"
    return out


def _smooth(a, roi, sigma):
    """Gaussian of the map inside the cord only (normalised convolution); sigma 0: unchanged."""
    if sigma == 0:
        return np.where(roi, a, 0)
    w = ndimage.gaussian_filter(roi.astype(float), sigma)
    v = ndimage.gaussian_filter(np.where(roi, a, 0).astype(float), sigma)
    return np.where(roi, v / np.maximum(w, 1e-6), 0)


def map_score_rows(healthy, lesioned, contrast_of, fprs):
    """Patient scores taken from the map instead of the AnoCurve (erode 1 maps): the peak pixel of
    the (smoothed) map, and the summed value of the largest component above a pixel threshold set
    at a healthy pixel FPR; each with its own patient threshold at 5 % (leave-one-subject-out)."""
    from u2adcore.config import U2ADConfig
    from u2adcore.evaluation.healthy import calibrate_healthy, rescore
    from u2adcore.evaluation.thresholds import threshold_at_fpr
    from u2adcore.scoring.maps import threshold_candidates

    cfg = U2ADConfig()
    cfg.scoring.erode_px = 1
    subjects = sorted({s.subject for s in healthy if s.subject != "phantom"})
    folds = {}
    for subj in subjects:
        th = calibrate_healthy([s for s in healthy if s.subject != subj], cfg, **fprs)
        folds[subj] = ([rescore(s, cfg, th) for s in healthy if s.subject != subj],
                       [(s, rescore(s, cfg, th)) for s in healthy + lesioned if s.subject == subj])

    def peak(sigma):
        return lambda sc, _: float(_smooth(sc.amap, sc.roi, sigma).max())

    def component(sigma, min_px):
        def score(sc, pixel):
            m = _smooth(sc.amap, sc.roi, sigma)
            lab = threshold_candidates(m, sc.roi, pixel, min_px, 1)
            return float(m[lab == 1].sum()) if lab.max() else 0.0
        return score

    rows = [(f"patient score = peak pixel, map sigma {g} px", peak(g), None, 0) for g in (0, 1, 2)]
    rows += [(f"patient score = largest component sum, pixel FPR {f:g}, min 6 px, map sigma {g} px", component(g, 6), f, g)
             for g in (0, 1) for f in (0.01, 0.03)]
    for name, score, pixel_fpr, sigma in rows:
        faint, moderate, strong = sorted(set(contrast_of.values()))
        counts = {"h": [0, 0], faint: [0, 0], moderate: [0, 0], strong: [0, 0]}
        for subj in subjects:
            cal, held = folds[subj]
            pixel = None
            if pixel_fpr is not None:
                pixel = float(np.quantile(np.concatenate([_smooth(c.amap, c.roi, sigma)[c.roi] for c in cal]), 1 - pixel_fpr))
            t = threshold_at_fpr([score(sc, pixel) for sc in cal], fprs["patient_fpr"])
            for s, sc in held:
                yes = score(sc, pixel) > t
                key = "h" if s.lesion is None or not s.lesion.any() else contrast_of[s.id]
                counts[key][0] += (not yes) if key == "h" else yes
                counts[key][1] += 1
        c = {k: f"{v[0]}/{v[1]}" for k, v in counts.items()}
        print(f"| {name} | {pixel_fpr if pixel_fpr is not None else '—'} | {c['h']} (\"no\") | {c[faint]} | {c[moderate]} | — | {c[strong]} | — |", flush=True)


def predictor_rows(healthy, lesioned, contrast_of, fprs):
    """The default scoring (erode 2) with the prediction swapped: the running median along the cord
    (methods.robust, no model), and the mean of mu and it; thresholds recalibrated as above."""
    import dataclasses

    from u2adcore.config import BaselineConfig, U2ADConfig
    from u2adcore.methods.base import MethodMaps
    from u2adcore.methods.robust import running_median_prediction

    window = int(round(BaselineConfig().runmedian_window_mm / U2ADConfig().preprocess.spacing_mm))  # as --method runmedian

    def swapped(studies, w_mu):
        out = []
        for s in studies:
            pred = w_mu * s.maps.recon + (1.0 - w_mu) * running_median_prediction(s.image, s.roi, window)
            res = np.where(s.roi, s.image - pred, 0).astype(np.float32)
            out.append(dataclasses.replace(s, maps=MethodMaps(error=np.abs(res), recon=pred, residual=res)))
        return out

    for name, w_mu in (("prediction = running median along the cord (no model)", 0.0), ("prediction = (mu + running median) / 2", 0.5)):
        r = evaluate(swapped(healthy, w_mu), swapped(lesioned, w_mu), contrast_of, U2ADConfig(), fprs)
        keys = sorted({k[3:] for k in r if k.startswith("yes")}, key=float)
        print(f"| {name} | {fprs['pixel_fpr']:g} | {r['healthy']} | {r['yes' + keys[0]]} | {r['yes' + keys[1]]} | {r['cand' + keys[1]]} | "
              f"{r['yes' + keys[2]]} | {r['cand' + keys[2]]} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--lesions", choices=("gap", "scaled"), default="gap", help="the lesion cohorts of verdict_benchmark.py")
    ap.add_argument("--model", type=Path, default=None, help="the checkpoint whose cached inference to rescore (default: the shipped model)")
    ap.add_argument("--lesion-draws", type=int, default=3, help="as verdict_benchmark.py (default %(default)s)")
    ap.add_argument("--placement", choices=("centre", "edge"), default="centre", help="as verdict_benchmark.py")
    args = ap.parse_args()
    import dataclasses

    from calibrate_default_model import FPRS
    from u2adcore.config import U2ADConfig
    from u2adcore.resources import default_model_path
    from u2adcore.training.checkpoint import file_sha256

    sha = file_sha256(args.model or default_model_path())[:12]
    edge = "" if args.placement == "centre" else f"_{args.placement}"
    cache = args.out / f"inferred_{sha}_k10_{args.lesions}_seed11x{args.lesion_draws}{edge}.pkl"
    if not cache.is_file():
        print(f"{cache}: not found; run benchmarks/verdict_benchmark.py --out {args.out} --lesions {args.lesions} "
              f"--lesion-draws {args.lesion_draws} --placement {args.placement} first", file=sys.stderr)
        return 2
    healthy, lesioned, contrast_of = pickle.loads(cache.read_bytes())
    faint, moderate, strong = (f"{c:g}" for c in sorted(set(contrast_of.values())))
    print(f"cache {cache.name}")
    print(f"| variant | pixel FPR | healthy quiet | c{faint} yes | c{moderate} yes | c{moderate} cand on lesion | c{strong} yes | c{strong} cand on lesion |")
    print("|---|---|---|---|---|---|---|---|")
    pixel_fpr = FPRS["pixel_fpr"]
    variants = [(n, {}, kw, pixel_fpr) for n, kw in VARIANTS] + [(n, over, {}, pixel_fpr) for n, over in CONFIG_VARIANTS]
    variants += [(f"erode 2, pixel FPR {f:g}", {"erode_px": 2}, {}, f) for f in (0.003, 0.03)]
    for n, over, kw, fpr in variants:
        cfg = U2ADConfig()
        cfg.scoring = dataclasses.replace(cfg.scoring, **dict({"erode_px": 1}, **over))
        seg.slice_map, seg.anocurve = patched(**kw)
        r = evaluate(healthy, lesioned, contrast_of, cfg, dict(FPRS, pixel_fpr=fpr))
        print(f"| {n} | {fpr:g} | {r['healthy']} | {r['yes' + faint]} | {r['yes' + moderate]} | {r['cand' + moderate]} | "
              f"{r['yes' + strong]} | {r['cand' + strong]} |", flush=True)
    seg.slice_map, seg.anocurve = _orig_slice_map, _orig_anocurve
    predictor_rows(healthy, lesioned, contrast_of, FPRS)
    map_score_rows(healthy, lesioned, contrast_of, FPRS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
