"""`slicer.app`, `slicer.mrmlScene`, `slicer.modules`, `slicer.ScriptedLoadableModule` and the
GUI half of `slicer.util`, over slicer-core's real MRML scene and logics, for headless widget tests.

Dialogs never block: they record what they would have shown in `Dialogs` (errors, questions with
their scripted answers), so a test asserts what the user would have seen.
"""
from __future__ import annotations

import os
import sys
import types
import unittest
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import slicer  # slicer-core
from PySide6 import QtCore, QtWidgets

from . import qt, standins


@dataclass
class Dialogs:
    """What dialogs would have shown, and the answers the test scripts for questions."""

    errors: list = field(default_factory=list)
    infos: list = field(default_factory=list)
    questions: list = field(default_factory=list)
    answer: bool = True

    def clear(self):
        self.errors.clear()
        self.infos.clear()
        self.questions.clear()
        self.answer = True


dialogs = Dialogs()


class _ApplicationLogic:
    """The part of vtkSlicerApplicationLogic the module uses: the scene's interaction node."""

    def GetInteractionNode(self):
        scene = slicer.mrmlScene
        node = scene.GetFirstNodeByClass("vtkMRMLInteractionNode")
        if node is None:
            node = scene.AddNewNodeByClass("vtkMRMLInteractionNode")
        return node


class Application:
    """slicer.app: only what the module uses; anything else raises AttributeError."""

    def __init__(self, qapp):
        self._qapp = qapp
        self._logic = _ApplicationLogic()

    isHarness = True

    def processEvents(self):
        self._qapp.processEvents()

    def applicationLogic(self):
        return self._logic

    def layoutManager(self):
        return None  # no views: what --no-main-window gives too

    def testingEnabled(self):
        return False

    def setOverrideCursor(self, cursor):
        self._qapp.setOverrideCursor(cursor)

    def restoreOverrideCursor(self):
        self._qapp.restoreOverrideCursor()

    def __setattr__(self, name, value):
        if not name.startswith("_"):
            raise AttributeError(f"slicer.app has no attribute {name!r} to set")
        object.__setattr__(self, name, value)


class _LogicModule:
    def __init__(self, logic):
        self._logic = logic

    def logic(self):
        self._logic.SetMRMLScene(slicer.mrmlScene)
        return self._logic


# ------------------------------------------------------------------ ScriptedLoadableModule


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        self.moduleName = self.__class__.__name__
        parent.title = ""
        parent.categories = []
        parent.dependencies = []
        parent.contributors = []
        parent.helpText = ""
        parent.acknowledgementText = ""


class ModuleWidgetParent(qt.PythonQtMixin, QtWidgets.QWidget):
    """The qSlicerScriptedLoadableModuleWidget a module widget gets as `parent`."""

    def __init__(self):
        super().__init__()
        QtWidgets.QVBoxLayout(self)
        self._entered = False

    isEntered = QtCore.Property(bool, lambda self: self._entered)


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.developerMode = False
        self.parent = parent if parent is not None else ModuleWidgetParent()
        self.layout = self.parent.layout()
        self.moduleName = self.__class__.__name__[: -len("Widget")]

    def resourcePath(self, filename):
        module = sys.modules[type(self).__module__]
        return os.path.join(os.path.dirname(module.__file__), "Resources", filename)

    def setup(self):
        pass

    def cleanup(self):
        pass

    def onReload(self):
        pass

    def enter(self):
        pass

    def exit(self):
        pass


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.moduleName = self.__class__.__name__[: -len("Logic")]

    def getParameterNode(self):
        return slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, msec=1000):
        pass


# ------------------------------------------------------------------ slicer.util GUI half


_loaders = []  # QUiLoader and the classes it builds must stay alive


def loadUI(path):
    """The .ui as PySide6 widgets; the C++-typed connections (vtkMRMLScene*) are re-made from
    the XML by name, since Qt cannot match them against the stand-ins' Python signals."""
    loader = qt.UiLoader(standins.CUSTOM_WIDGETS)
    _loaders.append(loader)
    root = loader.load(str(path))
    tree = ET.parse(path).getroot()
    named = {QtCore.QObject.objectName(w): w for w in root.findChildren(QtCore.QObject) if QtCore.QObject.objectName(w)}
    named[QtCore.QObject.objectName(root)] = root
    for c in tree.iter("connection"):
        sender, receiver = named[c.findtext("sender")], named[c.findtext("receiver")]
        slot = getattr(receiver, c.findtext("slot").split("(")[0])
        sender.connect(c.findtext("signal"), slot)
    return root


def childWidgetVariables(widget):
    ui = types.SimpleNamespace()
    for child in widget.findChildren(QtCore.QObject):
        if QtCore.QObject.objectName(child):
            setattr(ui, QtCore.QObject.objectName(child), child)
    return ui


def errorDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
    dialogs.errors.append(str(text))


def infoDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):
    dialogs.infos.append(str(text))


def confirmOkCancelDisplay(text, windowTitle=None, parent=None, **kwargs):
    dialogs.questions.append(str(text))
    return dialogs.answer


confirmYesNoDisplay = confirmOkCancelDisplay


def _pip_install(*args, **kwargs):
    raise AssertionError("slicer.util.pip_install called in a harness test: it would install into Slicer's Python")


# ------------------------------------------------------------------ install


_installed = None


def install():
    """Make `qt`, `ctk`, `slicer.app`, `slicer.modules`, `slicer.ScriptedLoadableModule` and the
    dialog functions of `slicer.util` exist (idempotent). Returns the QApplication."""
    global _installed
    if _installed is not None:
        return _installed
    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    sys.modules["qt"] = qt
    ctk = types.ModuleType("ctk")
    ctk.ctkCollapsibleButton = standins.ctkCollapsibleButton
    ctk.ctkPathLineEdit = standins.ctkPathLineEdit
    sys.modules["ctk"] = ctk
    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest):
        setattr(slm, cls.__name__, cls)
    sys.modules["slicer.ScriptedLoadableModule"] = slm
    slicer.ScriptedLoadableModule = slm
    slicer.app = Application(qapp)
    slicer.modules = types.SimpleNamespace(
        markups=_LogicModule(slicer.vtkSlicerMarkupsLogic()),
        plots=_LogicModule(slicer.vtkSlicerPlotsLogic()),
    )
    for name, fn in (("loadUI", loadUI), ("childWidgetVariables", childWidgetVariables), ("errorDisplay", errorDisplay),
                     ("infoDisplay", infoDisplay), ("confirmOkCancelDisplay", confirmOkCancelDisplay),
                     ("confirmYesNoDisplay", confirmYesNoDisplay), ("pip_install", _pip_install)):
        setattr(slicer.util, name, fn)
    if not hasattr(slicer, "mrmlScene"):
        slicer.mrmlScene = slicer.vtkMRMLScene()
    _installed = qapp
    return qapp
