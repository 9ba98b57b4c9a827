"""Detectors by name. Entries are "module:Class" strings, imported only when asked for, so the
CLI and `--method` choices never import torch or a method's dependencies up front.

To add a method, append one line to METHODS (or call `register` from a plugin). The class is
called as `Class(config=U2ADConfig, **options)`; `checkpoint=Path` is passed only to classes whose
constructor names a `checkpoint` parameter (methods with trained weights).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from ..config import U2ADConfig
from ..errors import InputError
from .base import Method

METHODS: dict[str, str] = {
    "u2ad": "u2adcore.methods.u2ad:U2ADMethod",
    "zscore": "u2adcore.methods.zscore:ZScoreMethod",
    "slic": "u2adcore.methods.slic:SlicMethod",
    "dbscan": "u2adcore.methods.dbscan:DbscanMethod",
    "dae": "u2adcore.methods.dae:DAEMethod",
    "robustz": "u2adcore.methods.robust:RobustZMethod",
    "runmedian": "u2adcore.methods.robust:RunningMedianMethod",
    "itermask": "u2adcore.methods.itermask:IterMaskMethod",
}


def register(name: str, target: str) -> None:
    """Add (or replace) `name` -> "package.module:Class"."""
    if ":" not in target:
        raise ValueError(f"method target must read 'module:Class', got {target!r}")
    METHODS[name] = target


def available() -> list[str]:
    return sorted(METHODS)


def method_class(name: str) -> type:
    """The class registered under `name`; InputError listing the choices when there is none."""
    if name not in METHODS:
        raise InputError(None, f"unknown method {name!r}; available: {', '.join(available())}")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def takes_checkpoint(name: str) -> bool:
    """Whether the method has trained weights (its constructor accepts `checkpoint`)."""
    return "checkpoint" in inspect.signature(method_class(name)).parameters


def get_method(name: str, config: U2ADConfig | None = None, **options: Any) -> Method:
    """Build detector `name` with `config` (defaults when None) and method-specific `options`."""
    cls = method_class(name)
    if not takes_checkpoint(name):
        if options.pop("checkpoint", None) is not None:
            raise InputError(None, f"method {name!r} has no trained weights; it takes no model (--model)")
    return cls(config=config if config is not None else U2ADConfig(), **options)
