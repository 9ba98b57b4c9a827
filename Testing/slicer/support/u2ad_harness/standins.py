"""Strict stand-ins for the CTK and qMRML widgets the module's .ui file uses.

Each implements only what Slicer's widget offers and the module needs, with Slicer's behaviour
where the module depends on it (a node combo box follows the scene and, with "None" disabled,
selects a node by itself, as qMRMLNodeComboBox does). Anything else raises AttributeError through
the PythonQt rules of `qt.PythonQtMixin`, so the harness cannot pass code the real widgets refuse.
"""
from __future__ import annotations

from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Property, Signal

from . import qt


class qMRMLWidget(qt.PythonQtMixin, QtWidgets.QWidget):
    mrmlSceneChanged = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene):
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):
        return self._scene


class qMRMLNodeComboBox(qt.PythonQtMixin, QtWidgets.QWidget):
    """Nodes of `nodeTypes` in the scene (subclasses only with showChildNodeTypes), hidden nodes
    left out; with noneEnabled False it selects the first node whenever none is selected."""

    currentNodeChanged = Signal(object)
    currentNodeIDChanged = Signal(str)
    nodeAdded = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._node_types: list[str] = []
        self._show_child = True
        self._add_enabled = True
        self._remove_enabled = True
        self._none_enabled = False
        self._scene = None
        self._current = None
        self._tags: list[int] = []

    def _get_types(self):
        return list(self._node_types)

    def _set_types(self, value):
        self._node_types = list(value)

    nodeTypes = Property("QStringList", _get_types, _set_types)
    showChildNodeTypes = Property(bool, lambda self: self._show_child, lambda self, v: setattr(self, "_show_child", bool(v)))
    addEnabled = Property(bool, lambda self: self._add_enabled, lambda self, v: setattr(self, "_add_enabled", bool(v)))
    removeEnabled = Property(bool, lambda self: self._remove_enabled, lambda self, v: setattr(self, "_remove_enabled", bool(v)))
    noneEnabled = Property(bool, lambda self: self._none_enabled, lambda self, v: setattr(self, "_none_enabled", bool(v)))

    def _accepts(self, node) -> bool:
        if node is None or node.GetHideFromEditors():
            return False
        if self._show_child:
            return any(node.IsA(t) for t in self._node_types)
        return node.GetClassName() in self._node_types

    def nodes(self) -> list:
        if self._scene is None:
            return []
        found = []
        for i in range(self._scene.GetNumberOfNodes()):
            node = self._scene.GetNthNode(i)
            if self._accepts(node):
                found.append(node)
        return found

    def nodeCount(self) -> int:
        return len(self.nodes())

    def setMRMLScene(self, scene):
        if self._scene is not None:
            for tag in self._tags:
                self._scene.RemoveObserver(tag)
        self._tags = []
        self._scene = scene
        self._current = None
        if scene is not None:
            self._tags = [
                scene.AddObserver(scene.NodeAddedEvent, self._on_added),
                scene.AddObserver(scene.NodeAboutToBeRemovedEvent, self._on_removed),
                scene.AddObserver(scene.EndCloseEvent, self._on_closed),
            ]
        self._select_default()

    def mrmlScene(self):
        return self._scene

    def _select_default(self):
        if self._current is None and not self._none_enabled:
            nodes = self.nodes()
            if nodes:
                self.setCurrentNode(nodes[0])

    def _on_added(self, scene, event):
        self._select_default()

    def _on_removed(self, scene, event):
        pass

    def _on_closed(self, scene, event):
        if self._current is not None and scene.GetNodeByID(self._current.GetID()) is None:
            self.setCurrentNode(None)

    def currentNode(self):
        return self._current

    def currentNodeID(self):
        return self._current.GetID() if self._current is not None else ""

    def setCurrentNode(self, node):
        if node is not None and not self._accepts(node):
            node = None  # the real combo box ignores a node it does not list
        if node is self._current:
            return
        self._current = node
        self.currentNodeChanged.emit(node)
        self.currentNodeIDChanged.emit(node.GetID() if node is not None else "")

    def setCurrentNodeID(self, node_id):
        self.setCurrentNode(self._scene.GetNodeByID(node_id) if (self._scene is not None and node_id) else None)


def _removed(self, scene, event):
    # NodeAboutToBeRemovedEvent carries the node as call data, which vtk Python observers only
    # receive with a typed callback; re-check the current node after the scene changed instead.
    QtCore.QTimer.singleShot(0, self._recheck)


def _recheck(self):
    if self._current is not None and (self._scene is None or self._scene.GetNodeByID(self._current.GetID()) is not self._current):
        self._current = None
        self.currentNodeChanged.emit(None)
        self.currentNodeIDChanged.emit("")
        self._select_default()


qMRMLNodeComboBox._on_removed = _removed
qMRMLNodeComboBox._recheck = _recheck


class ctkCollapsibleButton(qt.PythonQtMixin, QtWidgets.QPushButton):
    contentsCollapsed = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._collapsed = False

    def _set_collapsed(self, value):
        self._collapsed = bool(value)
        self.contentsCollapsed.emit(self._collapsed)

    collapsed = Property(bool, lambda self: self._collapsed, _set_collapsed)


class ctkPathLineEdit(qt.PythonQtMixin, QtWidgets.QWidget):
    """A path field: `currentPath` and `currentPathChanged(QString)`; a real line edit inside, so
    tests type into it like a user. `filters` is a set-type property the loader cannot read: kept
    opaque."""

    currentPathChanged = Signal(str)
    Files, Dirs, Readable, Writable = 0x2, 0x1, 0x100, 0x200

    def __init__(self, parent=None):
        super().__init__(parent)
        self._edit = qt.wrap(QtWidgets.QLineEdit)(self)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._edit)
        self._filters = 0
        self._edit.textChanged.connect(self.currentPathChanged.emit)

    def lineEdit(self):
        return self._edit

    def _get_path(self):
        return QtWidgets.QLineEdit.text(self._edit)

    def _set_path(self, value):
        self._edit.setText(value)  # as ctkPathLineEdit: always, which moves the cursor to the end

    currentPath = Property(str, _get_path, _set_path)
    filters = Property(int, lambda self: self._filters, lambda self, v: setattr(self, "_filters", v))

    def setCurrentPath(self, value):
        self._set_path(value)

    def addCurrentPathToHistory(self):
        pass


CUSTOM_WIDGETS = {cls.__name__: cls for cls in (qMRMLWidget, qMRMLNodeComboBox, ctkCollapsibleButton, ctkPathLineEdit)}
