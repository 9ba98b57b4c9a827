"""Training-free Z-scoring inside the cord (METHOD.md §9), and the base every training-free
comparison method shares.

A lesion is brighter than the rest of the cord; without a model, "how many standard deviations
above the cord's own mean" is the simplest evidence, and the floor every learned method must beat.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..config import BaselineConfig, Thresholds, U2ADConfig
from .base import MethodMaps


def roi_zscore(values: np.ndarray, roi_values: np.ndarray) -> np.ndarray:
    """(values - mean) / std of `roi_values`; zeros when the ROI is flat (no deviation to measure)."""
    std = float(np.std(roi_values))
    if std == 0.0:
        return np.zeros(np.shape(values), dtype=np.float64)
    return (np.asarray(values, dtype=np.float64) - float(np.mean(roi_values))) / std


def deviation(z: np.ndarray, hyperintense_only: bool) -> np.ndarray:
    """Positive part of `z` (brighter than the cord) or its magnitude."""
    return np.maximum(z, 0.0) if hyperintense_only else np.abs(z)


def zscore_map(image: np.ndarray, roi: np.ndarray, hyperintense_only: bool) -> np.ndarray:
    """Per-pixel deviation from the ROI mean in ROI standard deviations; 0 outside the ROI."""
    roi = np.asarray(roi, dtype=bool)
    out = np.zeros(np.shape(image), dtype=np.float32)
    if roi.any():
        out[roi] = deviation(roi_zscore(image[roi], image[roi]), hyperintense_only)
    return out


class TrainingFreeMethod:
    """A Method (methods/base.py) computed slice by slice from the image and cord alone.

    It carries no calibrated thresholds: `u2ad evaluate` chooses them per fold.
    """

    name = ""
    thresholds: Optional[Thresholds] = None

    def __init__(self, config: U2ADConfig, baseline: Optional[BaselineConfig] = None):
        self.config = config
        self.baseline = baseline if baseline is not None else BaselineConfig()

    def slice_map(self, image: np.ndarray, roi: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def maps(self, slices) -> list[MethodMaps]:
        return [MethodMaps(error=self.slice_map(s.image, s.roi)) for s in slices]

    def describe(self) -> dict:
        return {"method": self.name, "training_free": True, "settings": dataclasses.asdict(self.baseline)}


class ZScoreMethod(TrainingFreeMethod):
    name = "zscore"

    def slice_map(self, image: np.ndarray, roi: np.ndarray) -> np.ndarray:
        return zscore_map(image, roi, self.baseline.hyperintense_only)
