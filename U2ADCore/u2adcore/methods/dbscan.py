"""DBSCAN on in-cord intensities (METHOD.md §9): the bulk of the cord forms dense intensity
clusters; pixels DBSCAN leaves as noise are unusual, and how far they sit from the nearest
cluster (in standard deviations of the cord) is their anomaly score.
"""
from __future__ import annotations

import numpy as np

from .zscore import TrainingFreeMethod, deviation, roi_zscore


def noise_distance(values: np.ndarray, clustered: np.ndarray) -> np.ndarray:
    """Signed distance of each value to the nearest clustered value (positive = brighter)."""
    ref = np.sort(clustered)
    pos = np.searchsorted(ref, values)
    lower = ref[np.clip(pos - 1, 0, ref.size - 1)]
    upper = ref[np.clip(pos, 0, ref.size - 1)]
    nearest = np.where(np.abs(values - lower) <= np.abs(values - upper), lower, upper)
    return values - nearest


def dbscan_map(image: np.ndarray, roi: np.ndarray, *, eps: float, min_fraction: float, hyperintense_only: bool) -> np.ndarray:
    """Distance of DBSCAN noise pixels to the nearest clustered intensity (cord SD units); 0 for
    clustered pixels and outside the ROI. A core point needs `min_fraction` of the cord's pixels
    within `eps`. Without any cluster, every pixel is measured from the ROI median, the one point
    a degenerate cord still has."""
    from sklearn.cluster import DBSCAN

    roi = np.asarray(roi, dtype=bool)
    out = np.zeros(np.shape(image), dtype=np.float32)
    if not roi.any():
        return out
    values = np.asarray(image, dtype=np.float64)[roi]
    z = roi_zscore(values, values)
    min_samples = max(2, int(round(min_fraction * z.size)))
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(z[:, None])
    noise = labels < 0
    clustered = z[~noise] if (~noise).any() else np.array([np.median(z)])
    scores = np.zeros(z.size)
    scores[noise] = deviation(noise_distance(z[noise], clustered), hyperintense_only)
    out[roi] = scores
    return out


class DbscanMethod(TrainingFreeMethod):
    name = "dbscan"

    def slice_map(self, image: np.ndarray, roi: np.ndarray) -> np.ndarray:
        b = self.baseline
        return dbscan_map(image, roi, eps=b.dbscan_eps, min_fraction=b.dbscan_min_fraction, hyperintense_only=b.hyperintense_only)
