"""Read a detection's output folder (written by `u2ad detect`, docs/ARCHITECTURE.md) into plain data.

Kept apart from the MRML code so the schema lives in one place: `result.json` (scores, verdicts,
thresholds) and `curve.csv` (the AnoCurve). A file that is missing or malformed raises
InputError naming it, which the panel shows as is.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from u2adcore.config import SEGMENTS
from u2adcore.errors import InputError

RESULT_FILE = "result.json"
CURVE_FILE = "curve.csv"
ANOMALY_FILE = "anomaly_map.nii.gz"
CANDIDATES_FILE = "candidates.nii.gz"
REQUIRED_FILES = (RESULT_FILE, CURVE_FILE, ANOMALY_FILE, CANDIDATES_FILE)
CURVE_POSITION, CURVE_VALUE = "position_mm", "anocurve"  # curve.csv columns (u2adcore.detect.curve_csv)


@dataclass(frozen=True)
class SegmentRow:
    """One intervertebral segment: its score (None when its levels are unknown) and verdict."""

    name: str
    known: bool  # both border bodies are known (marked or filled from the prior)
    score: Optional[float]  # None when unknown, or when no cord lies in the span
    start_mm: Optional[float]  # along the AnoCurve, from the top of the cord
    end_mm: Optional[float]
    positive: Optional[bool]  # None: no calibrated threshold, or not scored
    inferred: bool  # an end body was filled in from the prior, not marked
    mscc: Optional[float] = None  # maximum spinal cord compression (%), when the worker measured it

    @property
    def yes_no(self) -> str:
        """The calibrated verdict as "yes"/"no"; "" without a threshold or a score."""
        return "" if (self.positive is None or self.score is None) else ("yes" if self.positive else "no")

    @property
    def verdict(self) -> str:
        if not self.known:
            return "not scored (levels unknown)"
        if self.score is None:
            return "not scored (no cord in this span)"
        if self.positive is None:
            return "no threshold"
        return "T2 hyperintensity" if self.positive else "normal"


@dataclass(frozen=True)
class DetectionSummary:
    """What the panel, the table and the chart show."""

    study_id: str
    patient_score: float
    patient_positive: Optional[bool]
    patient_threshold: Optional[float]
    segment_threshold: Optional[float]
    segments: tuple[SegmentRow, ...]
    curve_mm: np.ndarray  # AnoCurve sample positions (mm from the top of the cord)
    curve_values: np.ndarray

    @property
    def patient_yes_no(self) -> str:
        return "" if self.patient_positive is None else ("yes" if self.patient_positive else "no")

    @property
    def patient_verdict(self) -> str:
        if self.patient_positive is None:
            return "no threshold (model not calibrated)"
        return "T2 hyperintensity suspected" if self.patient_positive else "no T2 hyperintensity found"

    def borders(self) -> dict[str, float]:
        """Segment borders along the curve (mm), named by their vertebral body: C2-C3 runs C2 -> C3."""
        found: dict[str, float] = {}
        for s in self.segments:
            upper, lower = s.name.split("-")
            if s.start_mm is not None:
                found[upper] = s.start_mm
            if s.end_mm is not None:
                found[lower] = s.end_mm
        return found


def _opt_float(value, path: Path, what: str) -> Optional[float]:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InputError(path, f"{what} is not a finite number: {value!r}")
    return float(value)


def _opt_bool(value, path: Path, what: str) -> Optional[bool]:
    if value is not None and not isinstance(value, bool):
        raise InputError(path, f"{what} is not true/false/null: {value!r}")
    return value


def read_result(path: Path) -> dict:
    if not path.is_file():
        raise InputError(path, "the detection wrote no result.json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    return data


def read_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(position_mm, anocurve) columns of curve.csv, in file order."""
    if not path.is_file():
        raise InputError(path, "the detection wrote no curve.csv")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = reader.fieldnames or []
    if not {CURVE_POSITION, CURVE_VALUE} <= set(columns):
        raise InputError(path, f"expected columns {CURVE_POSITION} and {CURVE_VALUE}, found {columns}")
    try:
        mm = np.array([float(r[CURVE_POSITION]) for r in rows])
        values = np.array([float(r[CURVE_VALUE]) for r in rows])
    except ValueError as exc:
        raise InputError(path, f"non-numeric curve value ({exc})") from None
    return mm, values


def read_summary(out_dir: Path) -> DetectionSummary:
    """The detection summary of one output folder."""
    out_dir = Path(out_dir)
    result_path = out_dir / RESULT_FILE
    data = read_result(result_path)
    try:
        raw_segments = {s["name"]: s for s in data["segments"]}
        patient = data["patient_score"]
    except (KeyError, TypeError) as exc:
        raise InputError(result_path, f"missing field {exc} (written by an incompatible U2ADCore?)") from None
    segments = []
    for name in SEGMENTS:
        s = raw_segments.get(name, {})
        segments.append(
            SegmentRow(
                name=name,
                known=bool(s.get("known", False)),
                score=_opt_float(s.get("score"), result_path, f"score of {name}"),
                start_mm=_opt_float(s.get("start_mm"), result_path, f"start_mm of {name}"),
                end_mm=_opt_float(s.get("end_mm"), result_path, f"end_mm of {name}"),
                positive=_opt_bool(s.get("positive"), result_path, f"verdict of {name}"),
                inferred=bool(s.get("inferred", False)),
                mscc=_opt_float(s.get("mscc"), result_path, f"mscc of {name}"),
            )
        )
    thresholds = data.get("thresholds") or {}
    mm, values = read_curve(out_dir / CURVE_FILE)
    return DetectionSummary(
        study_id=str(data.get("study_id", "")),
        patient_score=_opt_float(patient, result_path, "patient_score"),
        patient_positive=_opt_bool(data.get("patient_positive"), result_path, "patient_positive"),
        patient_threshold=_opt_float(thresholds.get("patient"), result_path, "thresholds.patient"),
        segment_threshold=_opt_float(thresholds.get("segment"), result_path, "thresholds.segment"),
        segments=tuple(segments),
        curve_mm=mm,
        curve_values=values,
    )


def check_outputs(out_dir: Path) -> None:
    """Raise InputError naming the first expected output file that is absent."""
    for name in REQUIRED_FILES:
        if not (Path(out_dir) / name).is_file():
            raise InputError(Path(out_dir) / name, "expected detection output is missing")
