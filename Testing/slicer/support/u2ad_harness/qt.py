"""`qt` as PythonQt gives it to Slicer's Python, over PySide6 (Qt 6), for headless tests.

Only the rules the module's code relies on are reproduced, and strictly:
- `obj.connect("signal(args)", slot)`: the signal must exist with that many arguments; a slot
  that takes fewer arguments than the signal sends gets only the first ones (PythonQt's rule).
- Qt properties read and write as attributes (`button.enabled = False`, `label.text`); a
  property shadows the getter method of the same name, as in PythonQt. Setting an attribute
  that is neither a Qt property nor defined by the class raises AttributeError, so a typo or a
  property Slicer's widget does not have fails the test instead of passing silently.
- Every QObject class reached through this module is such a wrapper, and `UiLoader` builds
  .ui files from the same wrappers.
Not reproduced: Qt 5 specifics, PythonQt's type conversions beyond these, anything not listed.
"""
from __future__ import annotations

import inspect
import re
import sys
import types

from PySide6 import QtCore, QtGui, QtTest, QtWidgets

_SIGNATURE = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$")
_MODULES = (QtCore, QtGui, QtWidgets, QtTest)


def _max_args(slot) -> int | None:
    """How many positional arguments `slot` accepts (None: any number)."""
    try:
        sig = inspect.signature(slot)
    except (TypeError, ValueError):
        return None
    count = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _signal_arity(obj, name: str) -> set[int]:
    meta = obj.metaObject()
    found = set()
    for i in range(meta.methodCount()):
        m = meta.method(i)
        if m.methodType() == QtCore.QMetaMethod.Signal and bytes(m.name()).decode() == name:
            found.add(m.parameterCount())
    return found


class PythonQtMixin:
    """PythonQt's attribute rules for a PySide6 class (see the module docstring)."""

    _pyqt_connections: dict

    def connect(self, signature: str, slot):
        match = _SIGNATURE.match(signature)
        if match is None:
            raise ValueError(f"{type(self).__name__}.connect: not a signal signature: {signature!r}")
        name, args = match.group(1), match.group(2).strip()
        n_args = 0 if not args else args.count(",") + 1
        arities = _signal_arity(self, name)
        if n_args not in arities:
            raise AttributeError(f"{type(self).__name__} has no signal {signature} (found arities {sorted(arities)})")
        limit = _max_args(slot)

        def call(*values):
            return slot(*(values if limit is None else values[:limit]))

        signal = getattr(self, name)
        signal.connect(call)
        store = self.__dict__.setdefault("_pyqt_connections", {})
        store.setdefault((name, slot), []).append((signal, call))
        return True

    def disconnect(self, signature: str, slot=None):
        name = _SIGNATURE.match(signature).group(1)
        store = self.__dict__.get("_pyqt_connections", {})
        for key in [k for k in store if k[0] == name and (slot is None or k[1] == slot)]:
            for signal, call in store.pop(key):
                signal.disconnect(call)
        return True

    def __getattribute__(self, name):
        if name in ("connect", "disconnect"):  # shiboken would find QObject's own first
            return types.MethodType(getattr(PythonQtMixin, name), self)
        if not name.startswith("_") and name not in ("metaObject", "property", "setProperty"):
            meta = QtCore.QObject.metaObject(self)
            if meta.indexOfProperty(name) >= 0 and name not in type(self).__dict__:
                return QtCore.QObject.property(self, name)
        return super().__getattribute__(name)

    def __setattr__(self, name, value):
        if not name.startswith("_"):
            meta = QtCore.QObject.metaObject(self)
            index = meta.indexOfProperty(name)
            if index >= 0:
                prop = meta.property(index)
                if not prop.isWritable():
                    raise AttributeError(f"{type(self).__name__}.{name} is read-only")
                if not QtCore.QObject.setProperty(self, name, value):
                    raise TypeError(f"{type(self).__name__}.{name} = {value!r}: Qt refused the value")
                return
            is_named_child = isinstance(value, QtCore.QObject) and QtCore.QObject.objectName(value) == name
            if not hasattr(type(self), name) and not is_named_child:  # PythonQt reaches children by name
                raise AttributeError(f"{type(self).__name__} has no property or attribute {name!r} (PythonQt would refuse it)")
        super().__setattr__(name, value)


_wrapped: dict[type, type] = {}


def wrap(cls: type) -> type:
    """The PythonQt-style subclass of a PySide6 QObject class (cached)."""
    if cls not in _wrapped:
        _wrapped[cls] = type(cls.__name__, (PythonQtMixin, cls), {"__module__": __name__})
    return _wrapped[cls]


def __getattr__(name):
    for module in _MODULES:
        value = getattr(module, name, None)
        if value is None:
            continue
        if isinstance(value, type) and issubclass(value, QtCore.QObject) and name not in ("QApplication", "QCoreApplication", "QGuiApplication"):
            value = wrap(value)
        setattr(sys.modules[__name__], name, value)
        return value
    raise AttributeError(f"qt (harness) has no {name!r}")


class UiLoader:
    """Loads a .ui file into wrapped widgets, custom classes from `custom` ({class name: class})."""

    def __init__(self, custom: dict[str, type]):
        from PySide6.QtUiTools import QUiLoader

        custom_classes = custom

        class _Loader(QUiLoader):
            def createWidget(self, class_name, parent=None, name=""):
                if class_name in custom_classes:
                    widget = custom_classes[class_name](parent)
                else:
                    base = getattr(QtWidgets, class_name, None)
                    if base is None:
                        raise TypeError(f"the harness cannot build a {class_name}")
                    widget = wrap(base)(parent)
                widget.setObjectName(name)
                return widget

        self._loader = _Loader()
        self._custom = custom  # the loader must not outlive the classes it builds

    def load(self, path: str):
        handle = QtCore.QFile(path)
        if not handle.open(QtCore.QFile.ReadOnly):
            raise OSError(f"{path}: cannot open")
        try:
            root = self._loader.load(handle)
        finally:
            handle.close()
        if root is None:
            raise RuntimeError(f"{path}: {self._loader.errorString()}")
        return root
