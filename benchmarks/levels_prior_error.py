"""How far the PAM50 level prior puts the discs and bodies from errsm_21's manual disc labels.

errsm_21 is the one subject here with real manual disc labels (C2-C3 … T2-T3, SCT values 3-10;
../shared/data/realspine/SOURCES.md). Three paths are measured, all in the subject's LPS z (mm,
+ = the prediction lies cranial of the manual label):

* two landmarks, straight: the C2 and T2 body centres (t2_landmarks_C2_T2_center) and PAM50
  fractions on the straight C2->T2 line (the fill before docs/LEVELS.md's change);
* two landmarks, arc length: the same fractions laid along the manual cord mask's centreline
  (the default now);
* six discs: the manual discs C2-C3 … C7-T1 only; the end bodies C2 and T1 are extrapolated
  (T1 is checked against the midpoint of the manual C7-T1 and T1-T2 discs; C2 has no reference).

    .venv/bin/python benchmarks/levels_prior_error.py [--realspine ../shared/data/realspine]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from u2adcore.io.images import read_image
from u2adcore.levels.levels import bodies_from_discs, build_levels, disc_name, label_points, vertebra_name
from u2adcore.levels.prior import PAM50_BODY_Z_MM, PAM50_DISC_Z_MM, centreline_of, place_between

HERE = Path(__file__).resolve().parent
SUBJECT = "sct_2014_errsm/errsm_21"


def load(realspine: Path):
    d = realspine / SUBJECT
    cord = read_image(d / "t2_manual_segmentation.nii.gz")
    discs = label_points(read_image(d / "t2_labels-disc-manual_DERIVED-from-ivadomed.nii.gz"))
    landmarks = label_points(read_image(d / "t2_landmarks_C2_T2_center.nii.gz"))
    return cord, discs, landmarks


def two_landmark_errors(cord, discs, landmarks, along_cord: bool) -> dict[str, float]:
    """Signed z error (mm) of every disc 3..8 and body C3..T1 placed from the C2/T2 landmarks."""
    line = centreline_of(cord) if along_cord else None
    upper, lower = (PAM50_BODY_Z_MM["C2"], landmarks[2]), (PAM50_BODY_Z_MM["T2"], landmarks[9])
    errors = {}
    for k in range(3, 9):
        errors[disc_name(k)] = float(place_between(upper, lower, PAM50_DISC_Z_MM[k], line)[2] - discs[k][2])
    manual_bodies = {vertebra_name(n): p for n, p in bodies_from_discs(discs).items()}
    for name in ("C3", "C4", "C5", "C6", "C7", "T1"):
        errors[name] = float(place_between(upper, lower, PAM50_BODY_Z_MM[name], line)[2] - manual_bodies[name][2])
    return errors


def six_disc_t1_error(cord, discs) -> float:
    levels = build_levels({k: discs[k] for k in range(3, 9)}, "discs", cord=cord)
    return float(levels.bodies["T1"][2] - (discs[8][2] + discs[9][2]) / 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--realspine", type=Path, default=HERE.parent.parent / "shared" / "data" / "realspine")
    args = p.parse_args()
    cord, discs, landmarks = load(args.realspine)
    straight = two_landmark_errors(cord, discs, landmarks, along_cord=False)
    arc = two_landmark_errors(cord, discs, landmarks, along_cord=True)
    print(f"{'level':8s} {'straight':>9s} {'arc':>7s}   (signed z error, mm; + = cranial of the manual label)")
    for name in straight:
        print(f"{name:8s} {straight[name]:9.1f} {arc[name]:7.1f}")
    for label, err in (("straight", straight), ("arc", arc)):
        disc = np.abs([v for k, v in err.items() if "-" in k])
        print(f"{label:8s} discs: mean |error| {disc.mean():.1f} mm, max {disc.max():.1f} mm")
    print(f"six discs C2-C3 … C7-T1 -> extrapolated T1 body: {six_disc_t1_error(cord, discs):+.1f} mm")


if __name__ == "__main__":
    main()
