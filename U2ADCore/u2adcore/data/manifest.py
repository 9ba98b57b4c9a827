"""CSV manifests: one study per row, the unit every batch command (pretrain, adapt, detect,
evaluate) takes.

Columns `id,image,levels` are required (a `levels` cell may be empty); `cord`, `levels_kind`,
`label` (patient 0/1), `segments` (positive segments, `;`-separated) and `lesion` are optional.
A study without a cord mask (no `cord` column, or an empty cell) has its cord segmented
automatically when it is loaded (u2adcore.segmentation); a given mask always wins.
Paths are relative to the manifest's folder (absolute ones are kept), so a dataset folder can be
moved as a whole.
Everything is checked when the manifest is read, so a long run does not fail at study 90 of 100.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union

from ..config import SEGMENTS
from ..errors import InputError
from ..io.atomic import write_text

if TYPE_CHECKING:
    from ..io.study import Study

REQUIRED: tuple[str, ...] = ("id", "image", "levels")
OPTIONAL: tuple[str, ...] = ("levels_kind", "label", "segments", "lesion")
COLUMNS: tuple[str, ...] = ("id", "image", "cord", "levels") + OPTIONAL  # as written

LEVELS_KINDS: tuple[str, ...] = ("discs", "bodies")


@dataclass(frozen=True)
class ManifestEntry:
    """One study: resolved paths and its (optional) ground truth."""

    id: str
    image: Path
    cord: Optional[Path]  # None: segmented automatically on load
    levels: Optional[Path] = None
    levels_kind: Optional[str] = None
    label: Optional[int] = None  # patient label, 1 = has a lesion
    segments: tuple[str, ...] = ()  # positive segments
    lesion: Optional[Path] = None

    def load(self, segmenter=None) -> "Study":
        """The study; without a cord mask, its cord is segmented (with `segmenter` when given)."""
        from ..io.study import load_study

        return load_study(
            self.image,
            self.cord,
            levels=self.levels,
            levels_kind=self.levels_kind,
            lesion=self.lesion,
            study_id=self.id,
            segmenter=segmenter,
        )


def _is_label_image(path: Path) -> bool:
    return not path.name.lower().endswith(".json")


def _row_entry(row: dict, where: str, base: Path, manifest: Path) -> ManifestEntry:
    """Parse and check one row; `where` names it in errors ("row 3 (id 'sub-01')")."""

    def fail(problem: str) -> InputError:
        return InputError(manifest, f"{where}: {problem}")

    def path_of(column: str, required: bool) -> Optional[Path]:
        value = (row.get(column) or "").strip()
        if not value:
            if required:
                raise fail(f"column '{column}' is empty")
            return None
        path = Path(os.path.abspath(base / value))  # absolute, '..' collapsed, symlinks kept
        if not path.exists():
            raise fail(f"{column} file not found: {path}")
        return path

    levels = path_of("levels", False)
    kind = (row.get("levels_kind") or "").strip() or None
    if kind is not None and kind not in LEVELS_KINDS:
        raise fail(f"levels_kind {kind!r} is not one of {', '.join(LEVELS_KINDS)}")
    if levels is not None and kind is None and _is_label_image(levels):
        raise fail("levels is a label image but levels_kind is empty; say 'discs' or 'bodies'")
    label_text = (row.get("label") or "").strip()
    if label_text not in ("", "0", "1"):
        raise fail(f"label must be 0 or 1 (or empty), got {label_text!r}")
    label = int(label_text) if label_text else None
    segments = tuple(s.strip() for s in (row.get("segments") or "").split(";") if s.strip())
    unknown = [s for s in segments if s not in SEGMENTS]
    if unknown:
        raise fail(f"unknown segment(s) {unknown} in column 'segments'; segments are {', '.join(SEGMENTS)}")
    if segments and label == 0:
        raise fail(f"label is 0 (no lesion) but positive segments {list(segments)} are given")
    return ManifestEntry(
        id=row["id"].strip(),
        image=path_of("image", True),
        cord=path_of("cord", False),
        levels=levels,
        levels_kind=kind,
        label=label,
        segments=segments,
        lesion=path_of("lesion", False),
    )


def read_manifest(path: Union[str, Path]) -> list[ManifestEntry]:
    """Every row of the manifest, checked; raises InputError naming the manifest, row and column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "manifest file not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise InputError(path, f"missing required column(s) {missing}; a manifest needs {','.join(REQUIRED)}")
        reader.fieldnames = columns
        entries, seen = [], {}
        for number, row in enumerate(reader, start=2):
            study_id = (row.get("id") or "").strip()
            where = f"row {number} (id {study_id!r})"
            if not study_id:
                raise InputError(path, f"row {number}: column 'id' is empty")
            if study_id in seen:
                raise InputError(path, f"{where}: duplicate id, first used on row {seen[study_id]}")
            seen[study_id] = number
            entries.append(_row_entry(row, where, path.parent, path))
    if not entries:
        raise InputError(path, "the manifest lists no study")
    return entries


def _relative(path: Optional[Path], base: Path) -> str:
    if path is None:
        return ""
    absolute = os.path.abspath(path)  # not resolve(): a symlinked dataset keeps its own names
    try:
        return Path(os.path.relpath(absolute, os.path.abspath(base))).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return Path(absolute).as_posix()


def write_manifest(entries: Sequence[ManifestEntry], path: Union[str, Path]) -> None:
    """Write `entries` (atomically) with paths relative to the manifest's folder."""
    path = Path(path)
    base = path.parent
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in entries:
        writer.writerow(
            [
                e.id,
                _relative(e.image, base),
                _relative(e.cord, base),
                _relative(e.levels, base),
                e.levels_kind or "",
                "" if e.label is None else str(e.label),
                ";".join(e.segments),
                _relative(e.lesion, base),
            ]
        )
    write_text(path, buffer.getvalue())
