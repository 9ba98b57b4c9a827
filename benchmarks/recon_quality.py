"""How well does the Monte-Carlo mean μ reconstruct healthy cord the model never saw?

    .venv/bin/python benchmarks/recon_quality.py [MODEL.pt ...]

Relative MSE over the eroded cord (METHOD.md): mean over the cord eroded by one pixel of
(x − prediction)², divided by the square of the slice's cord median, averaged over the slices of
a subject. Held-back real healthy subjects: errsm_23, errsm_24, sct_example_data (one scanner,
1 mm) and tptbox_sample (another scanner, a 1.5 mm crop; cord = label 60 of its subreg mask),
the `--slices` middle sagittal slices of each. Next to each model's μ (K = 10, seed 0) stand
two predictors without a model:

- flat fill: the slice's cord mean (over the eroded cord itself, the best constant there);
- running median: per cord row (S-I position), the median of the cord pixels of the rows within
  ±`--window` rows (a smooth intensity profile along the cord).

Without a model argument the shipped model is measured.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "U2ADCore"))

SUBJECTS = ("errsm_23", "errsm_24", "sct_example_data", "tptbox")


def held_back(root: Path) -> dict[str, tuple[Path, Path, int | None]]:
    """subject -> (image, cord mask, cord label or None)."""
    e = root / "sct_2014_errsm"
    return {
        "errsm_23": (e / "errsm_23" / "t2.nii.gz", e / "errsm_23" / "t2_manual_segmentation.nii.gz", None),
        "errsm_24": (e / "errsm_24" / "t2.nii.gz", e / "errsm_24" / "t2_manual_segmentation.nii.gz", None),
        "sct_example_data": (root / "sct_example_data" / "t2" / "t2.nii.gz", root / "sct_example_data" / "t2" / "t2_seg.nii.gz", None),
        "tptbox": (root / "tptbox_sample" / "sub-mri_label-6_T2w.nii.gz", root / "tptbox_sample" / "sub-mri_seg-subreg_label-6_msk.nii.gz", 60),
    }


def load_slices(root: Path, n_slices: int, preprocess=None) -> dict[str, list]:
    from u2adcore.config import PreprocessConfig
    from u2adcore.io.study import load_study
    from u2adcore.volume.preprocess import prepare_slices

    pre = preprocess or PreprocessConfig()
    import dataclasses

    pre = dataclasses.replace(pre, n_slices=n_slices, slices=None)
    out = {}
    for sid, (image, cord, label) in held_back(root).items():
        study = load_study(image, cord, cord_label=label, study_id=sid)
        out[sid] = [s for s in prepare_slices(study, pre) if s.roi.any()]
    return out


def running_median(x: np.ndarray, roi: np.ndarray, window: int) -> np.ndarray:
    """Per row, the median of the cord pixels within ±window rows, on the cord's pixels."""
    pred = np.zeros_like(x)
    rows = np.flatnonzero(roi.any(axis=1))
    for r in rows:
        lo, hi = max(r - window, 0), r + window + 1
        pred[r] = np.median(x[lo:hi][roi[lo:hi]])
    return pred


def rel_mse(x: np.ndarray, pred: np.ndarray, roi: np.ndarray) -> float:
    from u2adcore.scoring.maps import analysis_roi

    ev = analysis_roi(roi, 1)
    return float(np.mean((x[ev] - pred[ev]) ** 2) / np.median(x[roi]) ** 2)


def baselines(slices: dict[str, list], window: int) -> dict[str, dict[str, float]]:
    from u2adcore.scoring.maps import analysis_roi

    flat, rmed = {}, {}
    for sid, ss in slices.items():
        f, r = [], []
        for s in ss:
            ev = analysis_roi(s.roi, 1)
            f.append(rel_mse(s.image, np.full_like(s.image, s.image[ev].mean()), s.roi))
            r.append(rel_mse(s.image, running_median(s.image, s.roi, window), s.roi))
        flat[sid], rmed[sid] = float(np.mean(f)), float(np.mean(r))
    return {"flat fill": flat, f"running median (±{window} rows)": rmed}


def model_scores(path: Path, slices: dict[str, list], k: int, mask_ratio=None) -> dict[str, float]:
    from u2adcore.training.checkpoint import load_checkpoint
    from u2adcore.uncertainty.montecarlo import mc_inference

    model = load_checkpoint(path).model.float()
    out = {}
    for sid, ss in slices.items():
        x = np.stack([s.image for s in ss])[:, None]
        roi = np.stack([s.roi for s in ss])[:, None]
        mu = mc_inference(model, x, roi, K=k, seed=0, mask_ratio=mask_ratio).mu
        out[sid] = float(np.mean([rel_mse(s.image, mu[i], s.roi) for i, s in enumerate(ss)]))
    return out


def row(name: str, per: dict[str, float]) -> str:
    vals = [per[s] for s in SUBJECTS]
    return f"| {name} | " + " | ".join(f"{v:.4f}" for v in vals) + f" | **{np.mean(vals):.4f}** |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path, help="checkpoints (default: the shipped model)")
    ap.add_argument("--realspine", type=Path, default=Path(os.environ.get("U2AD_REALSPINE", REPO.parent / "shared" / "data" / "realspine")))
    ap.add_argument("--slices", type=int, default=5, help="middle sagittal slices per subject")
    ap.add_argument("--window", type=int, default=5, help="running median half-window (rows)")
    ap.add_argument("--k", type=int, default=10, help="Monte-Carlo passes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mask-ratio", type=float, default=None,
                    help="cord patches hidden per pass (default: each model's training ratio; detection uses 0.9)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from u2adcore.resources import default_model_path

    models = args.models or [default_model_path()]
    slices = load_slices(args.realspine, args.slices)
    print(f"slices per subject: {', '.join(f'{s} {len(v)}' for s, v in slices.items())}")
    print("| predictor | " + " | ".join(SUBJECTS) + " | mean |")
    print("|---|" + "---|" * (len(SUBJECTS) + 1))
    for name, per in baselines(slices, args.window).items():
        print(row(name, per), flush=True)
    for m in models:
        ratio = "" if args.mask_ratio is None else f", mask ratio {args.mask_ratio:g}"
        print(row(f"μ {m.name}{ratio}", model_scores(m, slices, args.k, args.mask_ratio)), flush=True)


if __name__ == "__main__":
    main()
