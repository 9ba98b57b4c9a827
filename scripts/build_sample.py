"""Build the real sample study shipped in U2ADCore/u2adcore/resources/sample/ (docs/DATA.md).

A crop of errsm_21 (../shared/data/realspine, MIT; the only subject there with manual disc
labels) with its manual cord mask and the six disc labels C2-C3 … C7-T1, written once as is and
once with one seeded pseudo-lesion (data/pseudo.py) of moderate contrast in a stated segment.

The crop keeps the full superior-inferior extent and exactly the anterior-posterior span that
the 256 mm analysis grid takes from the full image around the cord, and narrows only the
left-right axis around the mid-sagittal slice, so the analysed slice (pixels and intensity
range) is the same as the full scan's. The script checks that.

    .venv/bin/python scripts/build_sample.py [--realspine ../shared/data/realspine]
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from u2adcore.config import PreprocessConfig, PseudoAnomalyConfig
from u2adcore.data.pseudo import insert_pseudo_lesions, slice_stats
from u2adcore.io.study import load_study
from u2adcore.levels.levels import disc_name, label_points
from u2adcore.levels.markups import MarkupPoint, write_markup_points
from u2adcore.resources import SAMPLE_FILES, sample_dir
from u2adcore.volume.orientation import to_canonical
from u2adcore.volume.preprocess import prepare_slices

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "sct_2014_errsm/errsm_21"
HALF_WIDTH_LR = 5  # slices kept either side of the mid-sagittal one
LESION_SEGMENT = "C4-C5"
CONTRAST = (0.45, 0.65)  # lesion mean, as a fraction of the way from the cord's mean to the CSF's
MIN_LENGTH_MM = 8.0
DISCS = range(3, 9)  # C2-C3 … C7-T1


def crop_box(image: sitk.Image, cord: sitk.Image) -> tuple[list[int], list[int]]:
    """(index, size) in the file's voxel axes: full S-I, the analysis grid's A-P span, +-5 L-R."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    axis_of = {name: int(np.argmax(np.abs(direction[row]))) for row, name in enumerate("LPS")}  # LPS row -> voxel axis
    kji = np.argwhere(sitk.GetArrayViewFromImage(cord) > 0)
    ijk = kji[:, ::-1]
    size = list(image.GetSize())
    index = [0, 0, 0]
    lr = axis_of["L"]
    counts = np.bincount(ijk[:, lr], minlength=size[lr])
    mid = int(np.argmax(counts))
    index[lr], size[lr] = mid - HALF_WIDTH_LR, 2 * HALF_WIDTH_LR + 1
    ap = axis_of["P"]
    grid = PreprocessConfig().size  # mm at 1 mm spacing: the span the grid takes around the cord
    centre = (ijk[:, ap].min() + ijk[:, ap].max()) / 2
    index[ap] = max(0, int(np.floor(centre - grid / 2)))
    size[ap] = min(grid + 2, image.GetSize()[ap] - index[ap])
    return index, size


def crop(img: sitk.Image, index, size) -> sitk.Image:
    return sitk.RegionOfInterest(img, size, index)


def write_thumbnail(image: sitk.Image, slice_index: int, path: Path) -> None:
    """A 128-pixel-high picture of the mid-sagittal slice for Slicer's Sample Data panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = sitk.GetArrayFromImage(to_canonical(image))[slice_index]
    lo, hi = np.percentile(arr, (1, 99.5))
    fig = plt.figure(figsize=(1.28 * arr.shape[1] / arr.shape[0], 1.28), dpi=100)
    fig.add_axes((0, 0, 1, 1)).imshow(np.clip(arr, lo, hi), cmap="gray", origin="upper", aspect="auto")
    fig.axes[0].set_axis_off()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--realspine", type=Path, default=ROOT.parent / "shared" / "data" / "realspine")
    p.add_argument("--first-seed", type=int, default=0)
    args = p.parse_args()
    src = args.realspine / SUBJECT
    image = sitk.ReadImage(str(src / "t2.nii.gz"))
    cord = sitk.Cast(sitk.ReadImage(str(src / "t2_manual_segmentation.nii.gz")), sitk.sitkUInt8)
    discs_all = sitk.ReadImage(str(src / "t2_labels-disc-manual_DERIVED-from-ivadomed.nii.gz"))
    darr = sitk.GetArrayFromImage(discs_all)
    darr[~np.isin(darr, list(DISCS))] = 0
    discs = sitk.GetImageFromArray(darr.astype(np.uint8))
    discs.CopyInformation(discs_all)

    index, size = crop_box(image, cord)
    out = sample_dir()
    files = {k: out / v for k, v in SAMPLE_FILES.items()}
    c_image, c_cord, c_discs = crop(image, index, size), crop(cord, index, size), crop(discs, index, size)
    assert sorted(np.unique(sitk.GetArrayViewFromImage(c_discs))[1:]) == list(DISCS), "a disc fell outside the crop"
    sitk.WriteImage(c_image, str(files["image"]), True)
    sitk.WriteImage(c_cord, str(files["cord"]), True)
    sitk.WriteImage(c_discs, str(files["discs"]), True)
    points = label_points(c_discs)
    write_markup_points([MarkupPoint(disc_name(k), points[k], "manual disc label (errsm_21, ivadomed sub-test001)") for k in DISCS], files["discs_markups"])

    # The analysed slice must be the full scan's, pixel for pixel.
    full = load_study(src / "t2.nii.gz", src / "t2_manual_segmentation.nii.gz")
    small = load_study(files["image"], files["cord"], levels=files["discs"], levels_kind="discs")
    (a,), (b,) = prepare_slices(full, PreprocessConfig()), prepare_slices(small, PreprocessConfig())
    assert np.array_equal(a.image, b.image) and np.array_equal(a.roi, b.roi), "the crop changes the analysed slice"
    assert (a.transform.intensity_lo, a.transform.intensity_hi) == (b.transform.intensity_lo, b.transform.intensity_hi)

    canon = to_canonical(small.image)
    carr, ccord = sitk.GetArrayFromImage(canon), sitk.GetArrayFromImage(to_canonical(small.cord)) > 0
    spacing_rc = (canon.GetSpacing()[1], canon.GetSpacing()[0])
    cfg = PseudoAnomalyConfig()
    for seed in range(args.first_seed, args.first_seed + 500):
        pseudo = insert_pseudo_lesions(small, np.random.default_rng(seed), n_lesions=(1, 1), cfg=cfg)
        (lesion,) = pseudo.lesions
        stats = slice_stats(carr[lesion.slice_index], ccord[lesion.slice_index], spacing_rc, cfg.csf_ring_mm, "sample")
        fraction = (lesion.mean - stats.cord_mean) / (stats.csf_mean - stats.cord_mean)
        hit = [s for s, v in pseudo.segment_labels.items() if v]
        if hit == [LESION_SEGMENT] and CONTRAST[0] <= fraction <= CONTRAST[1] and lesion.length_mm >= MIN_LENGTH_MM:
            break
    else:
        raise SystemExit("no seed gave a lesion that fits; widen the criteria")
    lesioned = sitk.Cast(sitk.Round(pseudo.study.image), image.GetPixelID())
    sitk.WriteImage(lesioned, str(files["image_lesion"]), True)
    sitk.WriteImage(sitk.Cast(pseudo.study.lesion, sitk.sitkUInt8), str(files["lesion"]), True)

    write_thumbnail(pseudo.study.image, lesion.slice_index, files["thumbnail"])

    meta = {
        "source": {
            "subject": "errsm_21",
            "files": {
                "t2.nii.gz": "spinalcordtoolbox/spinalcordtoolbox testing/data/errsm_21/t2/t2.nii.gz @ 2f897401d571893a3a730a70def06760bb862f3e (MIT)",
                "t2_manual_segmentation.nii.gz": "same repository and commit, testing/data/errsm_21/t2/t2_manual_segmentation.nii.gz (MIT)",
                "discs": "ivadomed/ivadomed testing_data/derivatives/labels/sub-test001/anat/sub-test001_T2w_labels-disc-manual.nii.gz "
                         "@ b58359e779e28fe7269caa97952c39629e2e7cd5 (MIT), shifted +30 voxels S-I onto errsm_21's grid",
            },
        },
        "crop": {"index": index, "size": size, "axes": "voxel axes of the source file (PSR: posterior, superior, right)"},
        "discs": [disc_name(k) for k in DISCS],
        "pseudo_lesion": {
            "seed": seed,
            "rng": "numpy.random.default_rng(seed)",
            "function": "u2adcore.data.pseudo.insert_pseudo_lesions(study, rng, n_lesions=(1, 1)), default PseudoAnomalyConfig",
            "segment": LESION_SEGMENT,
            "slice_index": lesion.slice_index,
            "centroid_lps_mm": [round(float(v), 2) for v in lesion.centroid],
            "length_mm": round(lesion.length_mm, 2),
            "width_mm": round(lesion.width_mm, 2),
            "mean": round(lesion.mean, 2),
            "cord_mean": round(stats.cord_mean, 2),
            "csf_mean": round(stats.csf_mean, 2),
            "contrast_fraction": round(float(fraction), 3),
            "n_voxels": lesion.n_voxels,
        },
        "sha256": {name: sha256(path) for name, path in files.items() if name not in ("meta", "readme", "licence")},
    }
    files["meta"].write_text(json.dumps(meta, indent=2) + "\n")
    total = sum(path.stat().st_size for path in files.values() if path.exists())
    print(f"crop index {index} size {size}; seed {seed}: lesion in {LESION_SEGMENT}, contrast {fraction:.2f}, "
          f"length {lesion.length_mm:.1f} mm, {lesion.n_voxels} voxels; {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()
