"""Errors a user can act on: each names the file (or setting) and the problem."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class U2ADError(Exception):
    """Base class; the CLI prints these without a traceback and exits with status 2."""


class InputError(U2ADError, ValueError):
    """A bad input file or setting. `str()` reads '<path>: <problem>'."""

    def __init__(self, path: Optional[Union[str, Path]], problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class CheckpointError(U2ADError):
    """A checkpoint that cannot be loaded exactly (wrong format version, truncated, mismatched)."""


class OutputExistsError(U2ADError):
    """The output folder holds files we did not write; refused unless overwrite is asked for."""


class Cancelled(U2ADError):
    """A run stopped by its cancel token; nothing half-written is left behind."""
