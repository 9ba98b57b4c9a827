"""The one interface every detector implements (METHOD.md §9): prepared slices in, error maps out.

Scoring, the curve, the files and the report are shared by all methods (detect.py), so a
comparison between U2AD and, say, Z-scoring differs only in the maps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ..config import Thresholds
    from ..volume.preprocess import PreparedSlice


@dataclass(frozen=True)
class MethodMaps:
    """One slice's maps on its 256 grid (float32, shape (size, size)).

    error: per-pixel anomaly evidence (U2AD: |x - mu|; training-free methods: their hyperintense
        deviation), the input to the paper's scoring;
    eu: epistemic uncertainty (variance over Monte-Carlo passes), None for methods without one;
    recon: the reconstruction in [0, 1] units, None for methods that do not reconstruct;
    residual: the signed residual x - prediction (U2AD: x - mu), which the default normative
        scoring uses; None for methods whose `error` is already a hyperintense deviation score.
    """

    error: np.ndarray
    eu: Optional[np.ndarray] = None
    recon: Optional[np.ndarray] = None
    residual: Optional[np.ndarray] = None


@runtime_checkable
class Method(Protocol):
    """A detector. Constructed by `registry.get_method(name, config=U2ADConfig, **options)`.

    name: registry key ("u2ad", "zscore", ...), written into result.json.
    thresholds: calibrated decision thresholds the detector carries (U2AD: stored in the
        checkpoint), or None; detection gives verdicts only when they exist.
    """

    name: str
    thresholds: Optional["Thresholds"]

    def maps(self, slices: list["PreparedSlice"]) -> list[MethodMaps]:
        """One MethodMaps per slice, same order; all slices in one call so a model batches them."""
        ...

    def describe(self) -> dict:
        """JSON-able identity for result.json (U2AD: model path, sha256, preset)."""
        ...
