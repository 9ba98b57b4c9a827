"""Which scale for the normative residual (ScoringConfig.residual_scale)? A quick check with the
shipped model, no adaptation (docs/DETECTION.md, "Normative residual").

Studies: benchmarks/healthy_cords (errsm_23, errsm_24, sct_example, TPTBox; several slices; manual
and one-voxel-dilated masks), each slice healthy and with 1-2 pseudo-lesions at contrast 0.5,
and the same with a smooth bias field. Every variant scores r = x - mu on the eroded cord:

- paper: |r|, bottom 20 % zeroed, top-3 components (METHOD.md §6 as published);
- none: max(r - median r, 0) (a global healthy scale only changes units, not rankings);
- slice_mad: the same divided by the slice's MAD of r;
- depth: divided by a healthy spread per depth into the cord (pixels from its edge), learned
  leave-one-subject-out on the healthy slices of the other subjects.

Figures: patient AUROC (AnoCurve peak, healthy vs lesioned, all confounds pooled), pixel AUPRC,
and the healthy patient scores' spread across confounds.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/scale_check.py --out /tmp/scale_check
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "U2ADCore"))
sys.path.insert(0, str(REPO / "benchmarks"))

from healthy_cords import healthy_slices, with_bias_field, with_pseudo_lesion  # noqa: E402


def collect(realspine: Path, mc: int) -> dict:
    import torch

    from u2adcore.config import U2ADConfig
    from u2adcore.methods.u2ad import shipped_model_path
    from u2adcore.scoring.maps import analysis_roi
    from u2adcore.training.checkpoint import load_checkpoint
    from u2adcore.uncertainty.montecarlo import mc_inference
    from u2adcore.volume.preprocess import prepare_slices

    cfg = U2ADConfig()
    rng = np.random.default_rng(7)
    studies = []
    for s in healthy_slices(realspine):
        studies.append((s, 0, "plain"))
        lesion = with_pseudo_lesion(s, rng, 0.5)
        if lesion is not None:
            studies.append((lesion, 1, "plain"))
        if s.mask == "manual":
            studies.append((with_bias_field(s), 0, "bias"))
            if lesion is not None:
                studies.append((with_bias_field(lesion), 1, "bias"))
    model = load_checkpoint(shipped_model_path(), "cpu").model
    out = {k: [] for k in ("image", "roi", "mu", "lesion")}
    meta = []
    for s, label, confound in studies:
        (p,) = prepare_slices(s.study, dataclasses.replace(cfg.preprocess, slices=[s.slice_index]))
        res = mc_inference(model, torch.from_numpy(p.image[None, None]), torch.from_numpy(p.roi[None, None]), K=mc)
        out["image"].append(p.image)
        out["roi"].append(analysis_roi(p.roi, 1))
        out["mu"].append(res.mu[0])
        out["lesion"].append(p.lesion)
        meta.append((s.subject, s.mask, confound, label))
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["subject"] = np.array([m[0] for m in meta])
    arrays["mask"] = np.array([m[1] for m in meta])
    arrays["confound"] = np.array([m[2] for m in meta])
    arrays["label"] = np.array([m[3] for m in meta])
    return arrays


def depth_map(roi: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.distance_transform_cdt(roi, metric="taxicab").astype(np.int32)


def variants(a: dict) -> dict[str, list[np.ndarray]]:
    from u2adcore.scoring.maps import postprocess

    n = len(a["label"])
    r = [a["image"][i] - a["mu"][i] for i in range(n)]
    centred = [np.where(a["roi"][i], r[i] - np.median(r[i][a["roi"][i]]), 0.0) for i in range(n)]
    out = {"paper": [], "none": [], "slice_mad": [], "depth": []}
    max_depth = 6
    for i in range(n):
        roi = a["roi"][i]
        out["paper"].append(postprocess(np.where(roi, np.abs(r[i]), 0).astype(np.float32), roi, 0.2, 3).amap)
        out["none"].append(np.maximum(centred[i], 0))
        mad = np.median(np.abs(centred[i][roi])) + 1e-6
        out["slice_mad"].append(np.maximum(centred[i], 0) / mad)
    for i in range(n):  # depth scale from the healthy plain slices of the other subjects
        healthy = [j for j in range(n) if a["label"][j] == 0 and a["confound"][j] == "plain" and a["subject"][j] != a["subject"][i]]
        spread = np.zeros(max_depth + 1)
        for d in range(1, max_depth + 1):
            vals = np.concatenate([np.abs(centred[j][(a["roi"][j]) & (np.minimum(depth_map(a["roi"][j]), max_depth) == d)]) for j in healthy])
            spread[d] = np.median(vals) if vals.size else 1.0
        dm = np.minimum(depth_map(a["roi"][i]), max_depth)
        out["depth"].append(np.where(a["roi"][i], np.maximum(centred[i], 0) / np.maximum(spread[dm], 1e-6), 0))
    return out


def patient_scores(maps, roi) -> np.ndarray:
    scores = []
    for m, q in zip(maps, roi):
        counts = q.sum(axis=1)
        rows = counts > 0
        scores.append(float((np.where(q, m, 0).sum(axis=1)[rows] / counts[rows]).max()))
    return np.array(scores)


def main() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--realspine", type=Path, default=REPO.parent / "shared" / "data" / "realspine")
    ap.add_argument("--mc", type=int, default=10)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "maps.npz"
    if not cache.exists():
        np.savez_compressed(cache, **collect(args.realspine, args.mc))
    a = dict(np.load(cache))
    label = a["label"].astype(bool)
    print(f"{len(label)} slices ({label.sum()} with pseudo-lesions), subjects {sorted(set(a['subject']))}")
    print("| scale | patient AUROC (all) | AUROC plain | AUROC bias | AUROC dilated masks | pixel AUPRC |")
    print("|---|---|---|---|---|---|")
    for name, maps in variants(a).items():
        ps = patient_scores(maps, a["roi"])
        sel = {"plain": (a["confound"] == "plain") & (a["mask"] == "manual"), "bias": a["confound"] == "bias",
               "dilated": a["mask"] == "dilated"}
        auc = {k: roc_auc_score(label[m], ps[m]) for k, m in sel.items()}
        px_s = np.concatenate([m[q] for m, q in zip(maps, a["roi"])])
        px_l = np.concatenate([les[q] for les, q in zip(a["lesion"], a["roi"])])
        print(f"| {name} | {roc_auc_score(label, ps):.3f} | {auc['plain']:.3f} | {auc['bias']:.3f} | {auc['dilated']:.3f} | "
              f"{average_precision_score(px_l, px_s):.3f} |")


if __name__ == "__main__":
    main()
