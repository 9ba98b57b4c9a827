"""Calibrate the shipped model on healthy cords only and store the thresholds in it, in place,
atomically, without retraining (issue 9). Run by scripts/calibrate_default_model.sh.

Calibration set: the real healthy cords the shipped model did not train on (errsm_23, errsm_24,
sct_example with its sct_testing crop, the TPTBox crop from another scanner; see
benchmarks/healthy_cords.py), several sagittal slices each, every slice with the manual mask and
with the mask dilated by one voxel, plus fresh healthy phantoms (seeds never used in training).
Thresholds: patient and segment at a 5 % healthy false-positive rate, pixel at a 1 % healthy
pixel false-positive rate, on the normative residual scaled by the healthy spread learned here.
Recorded in Thresholds.calibration: what they were set on, and the leave-one-subject-out
specificity with its 95 % Wilson interval (few subjects: the interval is wide).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "U2ADCore"))
sys.path.insert(0, str(REPO / "benchmarks"))

PHANTOM_SEEDS = range(7100, 7106)  # healthy phantoms the model never saw (it trained on seeds from 2026)
FPRS = {"patient_fpr": 0.05, "segment_fpr": 0.05, "pixel_fpr": 0.01}


def calibration_items(realspine: Path) -> list[tuple]:
    import SimpleITK as sitk

    from healthy_cords import healthy_slices
    from u2adcore.config import PhantomConfig
    from u2adcore.data.phantom import make_phantom
    from u2adcore.volume.orientation import to_canonical
    from u2adcore.volume.slices import mid_sagittal_index

    items = [(s.study, s.slice_index, s.subject) for s in healthy_slices(realspine)]
    for seed in PHANTOM_SEEDS:
        study = make_phantom(seed, n_lesions=0, cfg=PhantomConfig()).to_study(f"phantom_{seed}")
        items.append((study, mid_sagittal_index(sitk.GetArrayViewFromImage(to_canonical(study.cord)) > 0), "phantom"))
    return items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "U2ADCore/u2adcore/resources/models/default.pt")
    ap.add_argument("--realspine", type=Path, default=REPO.parent / "shared/data/realspine")
    ap.add_argument("--mc", type=int, default=10)
    args = ap.parse_args()

    from u2adcore.config import U2ADConfig
    from u2adcore.detect import detection_config
    from u2adcore.evaluation.healthy import calibrate_healthy, healthy_specificity, infer_studies
    from u2adcore.methods.registry import get_method
    from u2adcore.training.checkpoint import file_sha256, update_thresholds

    t0 = time.monotonic()
    cfg = U2ADConfig()
    cfg.inference.mc_samples, cfg.inference.device = args.mc, "cpu"
    method = get_method("u2ad", config=cfg, checkpoint=args.model)
    method.thresholds = None  # calibrate from scratch: no stored spread may scale the maps
    cfg = detection_config(cfg, method)
    studies = infer_studies(calibration_items(args.realspine), method, cfg)
    thresholds = calibrate_healthy(studies, cfg, **FPRS)
    loso = healthy_specificity(studies, cfg, **FPRS)
    thresholds.calibration.update({
        "model_sha256_before": file_sha256(args.model),
        "slices": "mid-sagittal and ±3 (errsm, sct_example), ±1 (sct_testing crop, TPTBox), phantoms mid-sagittal",
        "masks": "manual and dilated by one voxel (3D)",
        "phantom_seeds": list(PHANTOM_SEEDS),
        "mc_samples": args.mc,
        "specificity_loso": loso,
        "note": "few subjects (4 real, correlated slices within each): the interval is wide; "
                "estimated specificity, not a clinical figure",
        "script": "scripts/calibrate_default_model.sh",
    })
    update_thresholds(args.model, thresholds)  # atomic: a temporary file renamed over the model
    shown = {k: getattr(thresholds, k) for k in ("patient", "segment", "pixel", "residual_spread")}
    print(json.dumps({"thresholds": shown, "specificity_loso": loso, "n_studies": thresholds.n_studies,
                      "sha256": file_sha256(args.model), "seconds": round(time.monotonic() - t0, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
