"""Two more training-free floors (issue 13): robust z and a running median along the cord.

A learned method has to beat the one-line statistics a reader would try first. Robust z is
z-scoring with the median and MAD, so a lesion cannot inflate the spread it is measured against.
The running median predicts each pixel by the median cord signal of the rows around it, which
follows slow changes along the cord (coil sensitivity, cord width) that a single mean cannot;
its signed residual is scored like U2AD's x - mu (scoring/maps.normative_map).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .base import MethodMaps
from .zscore import TrainingFreeMethod, deviation

MAD_TO_SD = 1.4826  # MAD of a normal distribution x this = its standard deviation


def robust_z_map(image: np.ndarray, roi: np.ndarray, hyperintense_only: bool) -> np.ndarray:
    """(x - median) / (1.4826 MAD) over the cord, positive part (or magnitude); 0 outside the cord
    and everywhere when the cord is flat."""
    roi = np.asarray(roi, dtype=bool)
    out = np.zeros(np.shape(image), dtype=np.float32)
    if not roi.any():
        return out
    values = np.asarray(image, dtype=np.float64)[roi]
    med = float(np.median(values))
    mad = MAD_TO_SD * float(np.median(np.abs(values - med)))
    if mad > 0:
        out[roi] = deviation((values - med) / mad, hyperintense_only)
    return out


def running_median_prediction(image: np.ndarray, roi: np.ndarray, window_rows: int) -> np.ndarray:
    """Each cord pixel predicted by the running median (over `window_rows` cord rows) of the rows'
    median cord signal; the image itself outside the cord (residual 0 there)."""
    roi = np.asarray(roi, dtype=bool)
    image = np.asarray(image, dtype=np.float64)
    pred = image.copy()
    rows = np.flatnonzero(roi.any(axis=1))
    if rows.size == 0:
        return pred.astype(np.float32)
    row_median = np.array([np.median(image[r, roi[r]]) for r in rows])
    run = ndimage.median_filter(row_median, size=max(int(window_rows), 1), mode="nearest")
    for r, value in zip(rows, run):
        pred[r, roi[r]] = value
    return pred.astype(np.float32)


class RobustZMethod(TrainingFreeMethod):
    name = "robustz"

    def slice_map(self, image: np.ndarray, roi: np.ndarray) -> np.ndarray:
        return robust_z_map(image, roi, self.baseline.hyperintense_only)


class RunningMedianMethod(TrainingFreeMethod):
    """No model: residual = x - running median of the cord's row values along the cord."""

    name = "runmedian"

    def maps(self, slices) -> list[MethodMaps]:
        window = int(round(self.baseline.runmedian_window_mm / self.config.preprocess.spacing_mm))
        out = []
        for s in slices:
            pred = running_median_prediction(s.image, s.roi, window)
            residual = np.where(s.roi, s.image - pred, 0).astype(np.float32)
            error = deviation(residual, self.baseline.hyperintense_only).astype(np.float32)
            out.append(MethodMaps(error=error, recon=pred, residual=residual))
        return out
