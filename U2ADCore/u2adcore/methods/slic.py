"""SLIC superpixels inside the cord, flagged by the z-score of their mean (METHOD.md §9).

Averaging over a superpixel trades resolution for noise: a lesion that covers a superpixel lifts
its mean well above the cord's, while single bright noise pixels are diluted.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .zscore import TrainingFreeMethod, deviation, roi_zscore


def superpixels(image: np.ndarray, roi: np.ndarray, compactness: float, pixels_per_segment: int) -> np.ndarray:
    """SLIC labels (1..n) of the ROI, 0 outside; about one superpixel per `pixels_per_segment` cord pixels."""
    from skimage.segmentation import slic

    roi = np.asarray(roi, dtype=bool)
    n_segments = max(1, int(roi.sum()) // pixels_per_segment)
    return slic(
        np.asarray(image, dtype=np.float64),
        n_segments=n_segments,
        compactness=compactness,
        mask=roi,
        channel_axis=None,
        start_label=1,
    )


def slic_map(
    image: np.ndarray,
    roi: np.ndarray,
    *,
    compactness: float,
    pixels_per_segment: int,
    z_threshold: float,
    hyperintense_only: bool,
) -> np.ndarray:
    """Each superpixel carries the z-score of its mean among all superpixel means where it
    exceeds `z_threshold`, else 0; 0 outside the ROI."""
    roi = np.asarray(roi, dtype=bool)
    out = np.zeros(np.shape(image), dtype=np.float32)
    if not roi.any():
        return out
    labels = superpixels(image, roi, compactness, pixels_per_segment)
    index = np.unique(labels[labels > 0])
    means = ndimage.mean(np.asarray(image, dtype=np.float64), labels, index)
    z = deviation(roi_zscore(means, means), hyperintense_only)
    flagged = np.where(z > z_threshold, z, 0.0)
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.float32)
    lookup[index] = flagged
    return lookup[labels]


class SlicMethod(TrainingFreeMethod):
    name = "slic"

    def slice_map(self, image: np.ndarray, roi: np.ndarray) -> np.ndarray:
        b = self.baseline
        return slic_map(
            image,
            roi,
            compactness=b.slic_compactness,
            pixels_per_segment=b.slic_pixels_per_segment,
            z_threshold=b.slic_z_threshold,
            hyperintense_only=b.hyperintense_only,
        )
