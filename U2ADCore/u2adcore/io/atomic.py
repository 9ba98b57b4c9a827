"""Atomic writes: a reader never sees a half-written file, an interrupted run leaves none.

Every output goes to a temporary name in the destination folder and is renamed into place
(`os.replace` is atomic on one filesystem).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

from ..errors import OutputExistsError

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode an ordinary open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def staged_output_dir(out_dir: PathLike, overwrite: bool = False, owned: tuple[str, ...] = ()) -> Iterator[Path]:
    """Write a whole result folder at once.

    Yields an empty staging folder beside `out_dir`; on success its files are moved into
    `out_dir` (each by atomic rename), on failure or cancel the staging folder is removed and
    `out_dir` is untouched. An existing `out_dir` holding files other than `owned` names is
    refused unless `overwrite`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputExistsError(f"{out_dir}: exists and is not a folder")
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in owned)
        if foreign and not overwrite:
            shown = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
            raise OutputExistsError(
                f"{out_dir}: folder already holds files ({shown}); choose another folder or pass --overwrite"
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=out_dir.parent))
    try:
        yield stage
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in sorted(stage.iterdir()):
            target = out_dir / item.name
            if target.is_dir() and not item.is_dir():
                shutil.rmtree(target)
            if item.is_dir():
                if target.exists():
                    shutil.rmtree(target)
                os.replace(item, target)
            else:
                os.replace(item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
