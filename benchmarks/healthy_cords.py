"""Real healthy cords the shipped model never trained on, as studies for calibration and for the
verdict benchmark (scripts/calibrate_default_model.py, benchmarks/verdict_benchmark.py,
benchmarks/scale_check.py).

Subjects: errsm_23, errsm_24, sct_example (errsm_30; its 2014 crop sct_testing_data is the same
person and is folded into the same subject) and the TPTBox crop (another site and scanner, 1.5 mm).
The shipped model trained on errsm_11/18/21 and phantoms only. Every slice comes twice: with the
manual cord mask and with that mask dilated by one voxel (what an automatic segmentation gives).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

# name -> (subject, folder, image, cord, levels or None, levels kind, cord label, slice offsets)
SOURCES: dict[str, tuple] = {
    "errsm_23": ("errsm_23", "sct_2014_errsm/errsm_23", "t2.nii.gz", "t2_manual_segmentation.nii.gz",
                 "t2_landmarks_C2_T2_center.nii.gz", "bodies", None, (-3, 0, 3)),
    "errsm_24": ("errsm_24", "sct_2014_errsm/errsm_24", "t2.nii.gz", "t2_manual_segmentation.nii.gz",
                 "t2_landmarks_C2_T2_center.nii.gz", "bodies", None, (-3, 0, 3)),
    "sct_example": ("sct_example", "sct_example_data/t2", "t2.nii.gz", "t2_seg.nii.gz",
                    "labels_DERIVED-from-2014-grid.nii.gz", "bodies", None, (-3, 0, 3)),
    "sct_testing": ("sct_example", "sct_testing_data/t2", "t2.nii.gz", "t2_seg-manual.nii.gz",
                    "t2_labeled_center_manual.nii.gz", "bodies", None, (-1, 1)),
    "tptbox": ("tptbox", "tptbox_sample", "sub-mri_label-6_T2w.nii.gz", "sub-mri_seg-subreg_label-6_msk.nii.gz",
               None, None, 60, (-1, 0, 1)),
}
SUBJECTS = ("errsm_23", "errsm_24", "sct_example", "tptbox")


@dataclass
class SliceStudy:
    study: object  # io.study.Study
    slice_index: int  # canonical left-right index that is scored
    subject: str
    mask: str  # "manual" | "dilated"
    manual: object = None  # the study with its manual mask (lesions are placed with it)


def load_source(realspine: Path, name: str):
    from u2adcore.io.study import load_study

    _, folder, image, cord, levels, kind, label, _ = SOURCES[name]
    d = realspine / folder
    return load_study(d / image, d / cord, levels=None if levels is None else d / levels, levels_kind=kind,
                      cord_label=label, study_id=name)


def dilated(study, radius: int = 1):
    """The study with its cord mask dilated by `radius` voxels in 3D."""
    import SimpleITK as sitk

    cord = sitk.BinaryDilate(sitk.Cast(study.cord, sitk.sitkUInt8), [radius] * 3, sitk.sitkBall, 0, 1)
    cord.CopyInformation(study.cord)
    return dataclasses.replace(study, cord=cord)


def healthy_slices(realspine: Path, subjects: Optional[tuple[str, ...]] = None, masks=("manual", "dilated")) -> list[SliceStudy]:
    """Every source of `subjects` x its slice offsets around the mid-sagittal slice x `masks`."""
    import SimpleITK as sitk

    from u2adcore.volume.orientation import to_canonical
    from u2adcore.volume.slices import mid_sagittal_index

    out = []
    for name, spec in SOURCES.items():
        subject, offsets = spec[0], spec[7]
        if subjects is not None and subject not in subjects:
            continue
        base = load_source(realspine, name)
        base = dataclasses.replace(base, lesion=sitk.Cast(base.cord * 0, sitk.sitkUInt8))
        cord = sitk.GetArrayViewFromImage(to_canonical(base.cord)) > 0
        mid = mid_sagittal_index(cord)
        for off in offsets:
            i = mid + off
            if not cord[i].any():
                continue
            for mask in masks:
                study = base if mask == "manual" else dilated(base)
                out.append(SliceStudy(dataclasses.replace(study, id=f"{name}_s{i}_{mask}"), i, subject, mask, base))
    return out


def at_gap_fraction(healthy, lesioned, i: int, fraction: float):
    """`lesioned` with slice i's lesion rescaled so that its mean rise over `healthy` is `fraction`
    of that slice's cord-CSF gap (texture kept)."""
    import SimpleITK as sitk

    from u2adcore.config import PseudoAnomalyConfig
    from u2adcore.data.confounds import lesion_at_fraction
    from u2adcore.data.pseudo import slice_stats
    from u2adcore.volume.orientation import from_canonical, to_canonical

    canon = to_canonical(healthy.image)
    h = sitk.GetArrayFromImage(canon)
    out = sitk.GetArrayFromImage(to_canonical(lesioned.image))
    les = sitk.GetArrayFromImage(to_canonical(lesioned.lesion)) > 0
    cord = sitk.GetArrayFromImage(to_canonical(healthy.cord)) > 0
    st = slice_stats(h[i], cord[i], (canon.GetSpacing()[1], canon.GetSpacing()[0]), PseudoAnomalyConfig().csf_ring_mm, healthy.id)
    out[i] = lesion_at_fraction(h[i], out[i], les[i], st.csf_mean - st.cord_mean, fraction)
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(canon)
    return dataclasses.replace(lesioned, image=from_canonical(img, healthy.image))


def with_pseudo_lesion(s: SliceStudy, rng: np.random.Generator, contrast: float, gap: bool = False,
                       placement: str = "centre") -> Optional[SliceStudy]:
    """A copy with 1-2 pseudo-lesions in the scored slice, placed with the manual mask; None when
    the slice has no CSF brighter than the cord to draw lesion signal from.

    gap=False: at `contrast` x their inserted signal (1 = a mean drawn uniformly between cord and
    CSF, as data.pseudo draws it, so 0.5 gives 0-50 % of the cord-CSF gap). gap=True: each lesion
    set's mean rise is exactly `contrast` of the slice's cord-CSF gap (texture kept). `placement`:
    PseudoAnomalyConfig.placement ("centre" on the centreline, "edge" against the A or P surface)."""
    from u2adcore.config import PseudoAnomalyConfig
    from u2adcore.data.pseudo import insert_pseudo_lesions
    from u2adcore.errors import InputError

    manual = s.manual if s.manual is not None else s.study
    try:
        pseudo = insert_pseudo_lesions(manual, rng, n_lesions=(1, 2), slices=[s.slice_index], cfg=PseudoAnomalyConfig(placement=placement))
    except InputError:
        return None
    if gap:
        study = at_gap_fraction(manual, pseudo.study, s.slice_index, contrast)
    else:
        study = dataclasses.replace(pseudo.study, image=manual.image + (pseudo.study.image - manual.image) * float(contrast))
    study = dataclasses.replace(study, id=s.study.id + f"_lesion{contrast:g}")
    if s.mask == "dilated":
        study = dilated(study)
    return SliceStudy(study, s.slice_index, s.subject, s.mask, manual)


def with_bias_field(s: SliceStudy, strength: float = 0.25) -> SliceStudy:
    """A copy multiplied by a smooth linear bias field (S-I and A-P), ±strength across the field of view."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(s.study.image)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in arr.shape], indexing="ij")
    field = 1.0 + strength * (0.7 * grids[1] + 0.3 * grids[2])
    img = sitk.GetImageFromArray((arr * field).astype(np.float32))
    img.CopyInformation(s.study.image)
    return SliceStudy(dataclasses.replace(s.study, image=img, id=s.study.id + "_bias"), s.slice_index, s.subject, s.mask, s.manual)
