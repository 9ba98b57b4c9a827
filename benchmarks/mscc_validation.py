"""MSCC validation (docs/SEGMENTATION.md): phantoms with a known narrowing, and the healthy
real cords (manual masks, where MSCC should be near zero).

    OMP_NUM_THREADS=1 python benchmarks/mscc_validation.py --realspine ../shared/data/realspine --out build/mscc
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from u2adcore.config import SEGMENTS, PhantomConfig
from u2adcore.data.phantom import make_phantom
from u2adcore.io.study import load_study
from u2adcore.morphometry import cord_morphometry

ERRSM = ("errsm_11", "errsm_18", "errsm_21", "errsm_23", "errsm_24")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--realspine", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    phantom_rows, lines = [], ["| narrowing | segment | pixel / slice (mm) | MSCC measured (mean ± sd over seeds) | max |MSCC| elsewhere |", "|---|---|---|---|---|"]
    for fraction in (0.2, 0.35, 0.5):
        for segment in ("C3-C4", "C5-C6"):
            for pixel, slice_mm in ((0.9, 1.5), (0.6, 3.0)):
                got, elsewhere = [], []
                for seed in range(1, args.seeds + 1):
                    ph = make_phantom(seed, cfg=PhantomConfig(compression=fraction, compression_segment=segment, pixel_mm=pixel, slice_mm=slice_mm,
                                                              n_slices=int(round(21 / slice_mm))))
                    st = ph.to_study()
                    m = cord_morphometry(st.cord, st.levels).by_name()
                    got.append(m[segment].mscc)
                    elsewhere += [abs(m[s].mscc) for s in SEGMENTS if s != segment and m[s].mscc is not None]
                    phantom_rows.append({"fraction": fraction, "segment": segment, "pixel_mm": pixel, "slice_mm": slice_mm, "seed": seed,
                                         "mscc": {s: m[s].mscc for s in SEGMENTS}})
                lines.append(f"| {fraction * 100:.0f} % | {segment} | {pixel} / {slice_mm} | {np.mean(got):.1f} ± {np.std(got):.1f} | {max(elsewhere):.1f} |")
                print(lines[-1], flush=True)
    real_rows, values = [], []
    for s in ERRSM:
        d = args.realspine / "sct_2014_errsm" / s
        st = load_study(d / "t2.nii.gz", d / "t2_manual_segmentation.nii.gz", levels=d / "t2_landmarks_C2_T2_center.nii.gz", levels_kind="bodies")
        m = cord_morphometry(st.cord, st.levels).by_name()
        real_rows.append({"subject": s, "mscc": {n: m[n].mscc for n in SEGMENTS}, "min_ap_mm": {n: m[n].min_ap_mm for n in SEGMENTS},
                          "csa_mm2": {n: m[n].csa_mm2 for n in SEGMENTS}})
        values += [m[n].mscc for n in SEGMENTS if m[n].mscc is not None]
        print(s, " ".join(f"{n} {m[n].mscc:.1f}" for n in SEGMENTS), flush=True)
    v = np.array(values)
    summary = f"healthy real cords (manual masks, {len(v)} segments): MSCC mean {v.mean():.1f}, sd {v.std():.1f}, median {np.median(v):.1f}, range {v.min():.1f} … {v.max():.1f}"
    print(summary)
    (args.out / "mscc.json").write_text(json.dumps({"phantoms": phantom_rows, "real": real_rows, "table": lines, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
