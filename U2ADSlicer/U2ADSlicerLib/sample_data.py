"""Registration of the shipped real sample with Slicer's Sample Data module (Qt-free).

The sample (a cervical crop of errsm_21; u2adcore/resources/sample/README.md) ships inside the
package, so its "download" is a file:// URI that SampleData copies into its cache like any other
source. The SHA-256 checksums from sample.json make SampleData refresh its cached copy when a
newer package ships a changed file. The registration function is passed in (in Slicer:
`SampleData.SampleDataLogic.registerCustomSampleDataSource`), so this runs and is tested without
Slicer.
"""
from __future__ import annotations

from typing import Callable, Optional

from u2adcore.resources import sample_metadata, sample_paths

CATEGORY = "U2AD"
SAMPLE_NAME = "U2AD cervical T2 sample"
HEALTHY_SAMPLE_NAME = "U2AD cervical T2 sample (no lesion)"


def sample_sources() -> list[dict]:
    """The keyword arguments of one SampleData registration per sample: image, cord mask
    (as a segmentation, which the module's cord selector takes) and the six disc labels as a
    point list (the module's levels selector)."""
    paths, sums = sample_paths(), sample_metadata()["sha256"]
    sources = []
    for name, image_role, node in ((SAMPLE_NAME, "image_lesion", "U2AD sample T2"), (HEALTHY_SAMPLE_NAME, "image", "U2AD sample T2 (no lesion)")):
        roles = (image_role, "cord", "discs_markups")
        sources.append(
            {
                "category": CATEGORY,
                "sampleName": name,
                "uris": [paths[r].as_uri() for r in roles],
                "fileNames": [paths[r].name for r in roles],
                "nodeNames": [node, "U2AD sample cord", "U2AD sample discs"],
                "loadFileTypes": ["VolumeFile", "SegmentationFile", "MarkupsFile"],
                "checksums": [f"SHA256:{sums[r]}" for r in roles],
                "thumbnailFileName": str(paths["thumbnail"]),
            }
        )
    return sources


def register_sample_data(register: Callable[..., Optional[object]]) -> None:
    """Register both samples with `register` (SampleDataLogic.registerCustomSampleDataSource)."""
    for source in sample_sources():
        register(**source)
