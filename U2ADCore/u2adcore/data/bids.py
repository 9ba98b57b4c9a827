"""The public Spine Generic dataset (BIDS) as manifest entries: healthy T2w studies for pretraining.

Layout (spine-generic/data-multi-subject):
  sub-XX/anat/sub-XX_T2w.nii.gz
  derivatives/labels/sub-XX/anat/sub-XX_T2w_seg-manual.nii.gz          (cord)
  derivatives/labels/sub-XX/anat/sub-XX_T2w_labels-disc-manual.nii.gz  (disc points, SCT numbering)
The dataset ships through git-annex, so a subject's files may be links to content that was never
fetched; such subjects are skipped with a warning rather than failing the whole dataset.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

from ..errors import InputError
from .manifest import ManifestEntry

log = logging.getLogger(__name__)

IMAGE_SUFFIX = "_T2w.nii.gz"
CORD_SUFFIX = "_T2w_seg-manual.nii.gz"
DISCS_SUFFIX = "_T2w_labels-disc-manual.nii.gz"
LABELS_DIR = Path("derivatives") / "labels"


def read_spine_generic(root: Union[str, Path]) -> list[ManifestEntry]:
    """One entry per subject with a T2w image and a manual cord mask, sorted by subject.

    Disc labels are used when present (kind "discs"); subjects without them get no levels.
    Raises InputError when no subject is usable.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "Spine Generic dataset folder not found")
    entries = []
    for image in sorted(root.glob(f"sub-*/anat/sub-*{IMAGE_SUFFIX}")):
        subject = image.parent.parent.name
        if image.name != f"{subject}{IMAGE_SUFFIX}":
            continue  # another acquisition of the subject (e.g. sub-01_acq-x_T2w)
        labels = root / LABELS_DIR / subject / "anat"
        cord, discs = labels / f"{subject}{CORD_SUFFIX}", labels / f"{subject}{DISCS_SUFFIX}"
        if not image.exists():
            log.warning("%s: image content missing (git-annex link not fetched?); skipping %s", image, subject)
            continue
        if not cord.exists():
            log.warning("%s: no manual cord mask (%s); skipping %s", root, cord.relative_to(root), subject)
            continue
        has_discs = discs.exists()
        if not has_discs:
            log.info("%s: no disc labels; %s gets no vertebral levels", root, subject)
        entries.append(
            ManifestEntry(
                id=subject,
                image=image,
                cord=cord,
                levels=discs if has_discs else None,
                levels_kind="discs" if has_discs else None,
            )
        )
    if not entries:
        raise InputError(
            root,
            f"no usable subject: expected sub-*/anat/sub-*{IMAGE_SUFFIX} with "
            f"{LABELS_DIR.as_posix()}/sub-*/anat/sub-*{CORD_SUFFIX}",
        )
    return entries
