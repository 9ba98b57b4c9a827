"""Does detection on the automatic cord mask score like detection on the manual one?

For the real subjects of the pseudo-lesion benchmark (errsm_23, errsm_24, sct_example_data),
each segmented by a model that never saw it (errsm_24: the shipped model, which holds it out;
errsm_23 and sct_example: the leave-one-subject-out fold models of benchmarks/cordseg_loso.py,
sct_example's fold holding out the sct_testing crop of the same subject), N pseudo-lesion studies
and one healthy study per subject are detected twice: with the manual mask and with the
automatic mask of the very image detected (lesions included). Reported per study: patient score,
top segment, whether the top segment holds a lesion, for U2AD (shipped model) and Z-scoring; and
the morphometry (min AP diameter, MSCC per segment) on both masks.

    OMP_NUM_THREADS=1 python benchmarks/cordseg_downstream.py --realspine ../shared/data/realspine \
        --folds build/cordseg_loso --out build/cordseg_downstream
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from u2adcore.config import SEGMENTS, PseudoAnomalyConfig, U2ADConfig
from u2adcore.data.pseudo import insert_pseudo_lesions
from u2adcore.detect import detect_study, detection_config
from u2adcore.io.study import load_study
from u2adcore.levels.levels import read_levels
from u2adcore.methods.registry import get_method
from u2adcore.morphometry import cord_morphometry
from u2adcore.scoring.segments import top_segment
from u2adcore.segmentation import load_segmenter
from u2adcore.segmentation.metrics import compare

SUBJECTS = {
    "errsm_23": ("sct_2014_errsm/errsm_23", "t2.nii.gz", "t2_manual_segmentation.nii.gz", "t2_landmarks_C2_T2_center.nii.gz", "fold_errsm_23.pt"),
    "errsm_24": ("sct_2014_errsm/errsm_24", "t2.nii.gz", "t2_manual_segmentation.nii.gz", "t2_landmarks_C2_T2_center.nii.gz", None),
    "sct_example": ("sct_example_data/t2", "t2.nii.gz", "t2_seg.nii.gz", "labels_DERIVED-from-2014-grid.nii.gz", "fold_sct_testing.pt"),
}


def run_detect(study, methods):
    out = {}
    for name, (method, cfg) in methods.items():
        r = detect_study(study, method, cfg)
        top = top_segment(r.segments)
        out[name] = {"patient_score": r.patient_score, "top_segment": None if top is None else top.name, "slice_index": r.slice_index}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--realspine", required=True, type=Path)
    p.add_argument("--folds", required=True, type=Path, help="folder of the LOSO fold models")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--n", type=int, default=3, help="pseudo-lesion studies per subject")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    methods = {}
    for name in ("u2ad", "zscore"):
        cfg = U2ADConfig()
        method = get_method(name, config=cfg)
        methods[name] = (method, detection_config(cfg, method))
    rng = np.random.default_rng(args.seed)
    rows = []
    for subject, (d, image, cord, levels, fold) in SUBJECTS.items():
        root = args.realspine / d
        seg = load_segmenter(None if fold is None else args.folds / fold)
        base = load_study(root / image, root / cord, levels=root / levels, levels_kind="bodies", study_id=subject)
        cases = [("healthy", base, ())]
        for k in range(args.n):
            # Lesions on the mid-sagittal slice and one either side (3 mm across, like a small real
            # lesion), so that a mask whose "slice with the most cord" is one off still meets them.
            pseudo = insert_pseudo_lesions(base, rng, n_lesions=(1, 2), cfg=PseudoAnomalyConfig(n_neighbours=1))
            cases.append((f"lesion{k}", pseudo.study, tuple(s for s, v in pseudo.segment_labels.items() if v)))
        for tag, study, lesion_segments in cases:
            t0 = time.perf_counter()
            auto = seg.segment(study.image)
            seconds = time.perf_counter() - t0
            auto_levels = read_levels(root / levels, "bodies", reference=study.image, cord=auto)
            auto_study = dataclasses.replace(study, cord=auto, levels=auto_levels, cord_source="automatic")
            row = {"subject": subject, "case": tag, "lesion_segments": list(lesion_segments), "seg_seconds": round(seconds, 2),
                   **{k: round(v, 4) for k, v in compare(auto, study.cord).items()},
                   "manual": run_detect(study, methods), "automatic": run_detect(auto_study, methods)}
            for which, s in (("manual", study), ("automatic", auto_study)):
                m = cord_morphometry(s.cord, s.levels).by_name()
                row[which]["mscc"] = {n: None if m[n].mscc is None else round(m[n].mscc, 1) for n in SEGMENTS}
                row[which]["min_ap_mm"] = {n: None if m[n].min_ap_mm is None else round(m[n].min_ap_mm, 2) for n in SEGMENTS}
            rows.append(row)
            print(json.dumps(row), flush=True)
            (args.out / "downstream.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
