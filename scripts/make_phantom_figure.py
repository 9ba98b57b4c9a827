"""Make docs/phantom_vs_real.png and print the phantom-vs-real statistics quoted in docs/DATA.md.

Mid-sagittal slices of generated studies next to real errsm subjects (same display rule: grey
scale 0 .. 99.5th percentile of the slice), and, for both, the numbers the phantom defaults are
tuned to: CSF/cord signal ratio, cord AP width and in-cord noise, all measured between the C2 and
T2 levels with the same code.

    .venv/bin/python scripts/make_phantom_figure.py [--real ../shared/data/realspine] [--out docs/phantom_vs_real.png]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from u2adcore.config import PhantomConfig, PseudoAnomalyConfig
from u2adcore.data.phantom import make_phantom
from u2adcore.data.pseudo import cord_axis, csf_band
from u2adcore.io.atomic import atomic_path
from u2adcore.volume.orientation import to_canonical
from u2adcore.volume.slices import mid_sagittal_index

REPO = Path(__file__).resolve().parents[1]
REAL_SUBJECTS = ("errsm_11", "errsm_18", "errsm_21", "errsm_23", "errsm_24")
PHANTOM_SEEDS = (0, 1, 2, 3, 4)


def mid_slice(image: sitk.Image, cord: sitk.Image, z_top: float, z_bottom: float):
    """(slice, cord slice, (row, col) spacing, rows between the two LPS z levels) of the canonical mid-sagittal slice."""
    canon = to_canonical(image)
    img = sitk.GetArrayFromImage(canon).astype(np.float32)
    mask = sitk.GetArrayFromImage(to_canonical(cord)) > 0
    i = mid_sagittal_index(mask)
    z = np.array([canon.TransformIndexToPhysicalPoint((0, r, i))[2] for r in range(img.shape[1])])
    rows = (z <= z_top) & (z >= z_bottom)
    return img[i], mask[i], (canon.GetSpacing()[1], canon.GetSpacing()[0]), rows


def stats(img: np.ndarray, cord: np.ndarray, spacing_rc, rows: np.ndarray) -> dict[str, float]:
    """CSF/cord ratio, median perpendicular cord width and cord SNR (mean / noise sigma)."""
    cord = cord & rows[:, None]
    band = csf_band(cord, spacing_rc, PseudoAnomalyConfig.csf_ring_mm) & rows[:, None]
    width = cord_axis(cord, spacing_rc)[3]
    core = ndi.binary_erosion(cord, iterations=2)
    inner = core & np.roll(core, 1, axis=0)
    # Differences of vertical neighbours well inside the cord (away from its partial-volume
    # edges): the cord's signal varies slowly along it, so their spread is mostly noise (sigma * sqrt 2).
    sigma = float(np.std((img - np.roll(img, 1, axis=0))[inner]) / np.sqrt(2.0))
    return {
        "csf_cord_ratio": float(img[band].mean() / img[cord].mean()),
        "cord_ap_mm": float(np.median(width)),
        "snr": float(img[cord].mean() / sigma),
        "cord_mean": float(img[cord].mean()),
    }


def real_cases(root: Path):
    for name in REAL_SUBJECTS:
        d = root / "sct_2014_errsm" / name
        image = sitk.ReadImage(str(d / "t2.nii.gz"), sitk.sitkFloat32)
        cord = sitk.ReadImage(str(d / "t2_manual_segmentation.nii.gz"), sitk.sitkUInt8)
        marks = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "t2_landmarks_C2_T2_center.nii.gz")))
        z = {int(marks[tuple(k)]): image.TransformIndexToPhysicalPoint([int(v) for v in k[::-1]])[2] for k in np.argwhere(marks > 0)}
        yield name, image, cord, z[2], z[9]


def phantom_cases(cfg: PhantomConfig):
    for seed in PHANTOM_SEEDS:
        p = make_phantom(seed, n_lesions=1 if seed % 2 else 0, cfg=cfg)
        yield f"phantom seed {seed}" + (" (1 lesion)" if seed % 2 else ""), p.image, p.cord, p.body_centres["C2"][2], p.body_centres["T2"][2]


def crop_to_cord(img: np.ndarray, cord: np.ndarray, spacing_rc, width_mm: float = 150.0) -> np.ndarray:
    """A fixed-width window in A-P centred on the cord, so every panel shows the same anatomy."""
    cols = np.flatnonzero(cord.any(axis=0))
    centre = int(cols.mean())
    half = int(width_mm / 2 / spacing_rc[1])
    padded = np.pad(img, ((0, 0), (half, half)))
    return padded[:, centre : centre + 2 * half]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "data" / "realspine")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "phantom_vs_real.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows_of_panels = [("real", list(real_cases(args.real))), ("phantom", list(phantom_cases(PhantomConfig())))]
    fig, axes = plt.subplots(2, len(REAL_SUBJECTS), figsize=(3.0 * len(REAL_SUBJECTS), 8.6))
    table = {}
    for r, (kind, cases) in enumerate(rows_of_panels):
        for c, (name, image, cord, z_top, z_bottom) in enumerate(cases):
            img, mask, spacing_rc, rows = mid_slice(image, cord, z_top, z_bottom)
            table.setdefault(kind, []).append(stats(img, mask, spacing_rc, rows))
            view = crop_to_cord(img, mask, spacing_rc)
            ax = axes[r, c]
            ax.imshow(view, cmap="gray", vmin=0, vmax=np.percentile(img, 99.5), aspect=spacing_rc[0] / spacing_rc[1], interpolation="bilinear")
            ax.set_title(name, fontsize=9)
            ax.axis("off")
    fig.suptitle("Mid-sagittal T2w: real errsm subjects (top) and generated phantoms (bottom)", fontsize=11)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    print(f"wrote {args.out}")
    print(f"{'':8s} {'CSF/cord':>16s} {'cord AP mm':>16s} {'SNR':>16s} {'cord mean':>16s}")
    for kind, rows in table.items():
        cells = []
        for key in ("csf_cord_ratio", "cord_ap_mm", "snr", "cord_mean"):
            v = np.array([row[key] for row in rows])
            cells.append(f"{v.mean():7.2f} [{v.min():.1f}-{v.max():.1f}]")
        print(f"{kind:8s} " + " ".join(f"{c:>16s}" for c in cells))


if __name__ == "__main__":
    main()
