"""The real manual cord masks of ../shared/data/realspine (SOURCES.md there) and generated
phantoms, as training/validation subjects for the cord segmentation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import SimpleITK as sitk

ERRSM = ("errsm_11", "errsm_18", "errsm_21", "errsm_23", "errsm_24")


@dataclass(frozen=True)
class Subject:
    name: str
    image: Path
    cord: Path
    cord_label: Optional[int] = None  # the value of the cord in a multi-label mask

    def read(self) -> tuple[sitk.Image, sitk.Image]:
        img = sitk.ReadImage(str(self.image), sitk.sitkFloat32)
        lab = sitk.ReadImage(str(self.cord))
        arr = sitk.GetArrayFromImage(lab)
        arr = (arr == self.cord_label) if self.cord_label is not None else (arr > 0)
        mask = sitk.GetImageFromArray(arr.astype("uint8"))
        mask.CopyInformation(lab)
        return img, mask


def realspine_subjects(root: Path) -> list[Subject]:
    """errsm_11/18/21/23/24 (manual masks), the sct_testing_data crop (manual) and the TPTBox
    sample (SPINEPS cord label 60, 1.5 mm, another scanner)."""
    root = Path(root)
    out = [Subject(s, root / "sct_2014_errsm" / s / "t2.nii.gz", root / "sct_2014_errsm" / s / "t2_manual_segmentation.nii.gz") for s in ERRSM]
    out.append(Subject("sct_testing", root / "sct_testing_data" / "t2" / "t2.nii.gz", root / "sct_testing_data" / "t2" / "t2_seg-manual.nii.gz"))
    out.append(Subject("tptbox", root / "tptbox_sample" / "sub-mri_label-6_T2w.nii.gz", root / "tptbox_sample" / "sub-mri_seg-subreg_label-6_msk.nii.gz", 60))
    return out
