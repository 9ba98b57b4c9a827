"""U2AD Slicer: find T2 hyperintensity in the cervical spinal cord with U2AD.

The module class, the widget (Qt) and thin app-side subclasses of the Qt-free logic in
U2ADSlicerLib. Detection and adaptation run in a worker process, polled by a QTimer, so the
GUI never freezes and can always cancel.
"""
from __future__ import annotations

import html
import importlib
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from U2ADSlicerLib import dependencies, landmarks, mrml, parameters, pipeline
from U2ADSlicerLib.logic import U2ADLogic
from U2ADSlicerLib.warm import WarmSession
from U2ADSlicerLib.worker import describe_progress, worker_env, worker_python

from u2adcore.config import VERTEBRAE, AdaptConfig
from u2adcore.errors import Cancelled, U2ADError
from u2adcore.methods import registry

POLL_MS = 200  # how often the panel reads the worker's progress
LEVELS_NODE_NAME = "U2AD levels"

CITATION = (
    "Zhang, Chen, He et al., \"U2AD: Uncertainty-based unsupervised anomaly detection framework for "
    "detecting T2 hyperintensity in MRI spinal cord\", Medical Image Analysis 109 (2026) 103939."
)


class U2ADSlicer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "U2AD T2 Hyperintensity"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["U2AD Slicer contributors"]
        self.parent.helpText = (
            "<p>Flags T2 hyperintensity in the cervical spinal cord on a sagittal T2-weighted MRI.</p>"
            "<p>A model trained on healthy spines reconstructs the cord; what it cannot reconstruct is shown "
            "as the <b>anomaly map</b> (a fixed colour scale: the same colour means the same deviation in every "
            "study), the <b>candidates</b> (segment 'T2 hyperintensity'), the <b>anomaly curve</b> along the "
            "cord and one <b>score per segment</b> C2-C3 ... C7-T1, each with a yes/no when the model is "
            "calibrated. It is a reading aid, not a diagnosis: check every flag on the images.</p>"
            "<p>You need the T2 volume, a spinal-cord segmentation that includes any lesion, and vertebral "
            "landmarks (place two with 'Place 2 landmarks'; the rest are filled in and can be edited). "
            "'Adapt to studies' tunes the model to your scanner's studies first, as the method intends.</p>"
            f"<p>Method: {CITATION}</p>"
        )
        self.parent.acknowledgementText = (
            f"If you use this module, please cite {CITATION} "
            "Real-data tests use public spinal-cord MRI from the Spinal Cord Toolbox (MIT)."
        )
        # The shipped real sample appears in Sample Data once the application has started.
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add "U2AD cervical T2 sample" to the Sample Data module (U2ADSlicerLib/sample_data.py)."""
    import SampleData

    from U2ADSlicerLib.sample_data import register_sample_data

    register_sample_data(SampleData.SampleDataLogic.registerCustomSampleDataSource)


class U2ADSlicerLogic(ScriptedLoadableModuleLogic, U2ADLogic):
    """The app's logic: ScriptedLoadableModuleLogic plus the Qt-free U2ADLogic on slicer.mrmlScene."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        U2ADLogic.__init__(self, slicer.mrmlScene)

    def getParameterNode(self):
        return parameters.get_parameter_node(slicer.mrmlScene)

    def show(self, volume, outputs, opacity=None):
        """Also switch to a layout with a plot view (there is none in --no-main-window mode)."""
        opacity = mrml.DisplaySettings().overlay_opacity if opacity is None else opacity
        U2ADLogic.show(self, volume, outputs, opacity)
        if slicer.app.layoutManager() is not None:
            slicer.util.setSliceViewerLayers(background=volume, foreground=outputs.anomaly_map, foregroundOpacity=opacity)
            slicer.modules.plots.logic().ShowChartInLayout(outputs.chart)


class U2ADSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._updatingGUI = False
        self._job = None
        self._jobKind = ""
        self._jobOrphaned = False  # the scene the job belongs to was closed: load nothing
        self._prefetch = None  # (thread, {file: node}) reading a finished detection's outputs
        self._loading = None  # pipeline.finish_steps adding a finished detection's nodes, one step per tick
        self._levelsTask = None  # (thread, result, point list) filling in levels
        self._warm = None  # the worker kept up between detections, with its model loaded
        self._environment = None
        self._probe = None
        self._install = None
        self._installDir = None
        self._observedCord = None
        self._placing = None  # the point list whose placement is in progress
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_MS)
        self._timer.connect("timeout()", self.onPoll)
        self._loadTimer = qt.QTimer()
        self._loadTimer.setInterval(0)  # one loading step per event-loop turn
        self._loadTimer.connect("timeout()", self.onLoadStep)

    # ------------------------------------------------------------ setup

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/U2ADSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = U2ADSlicerLogic()

        for combo in (self.ui.firstLandmarkComboBox, self.ui.secondLandmarkComboBox):
            combo.addItems([v for v in VERTEBRAE if v != "C1"])
        self.ui.deviceComboBox.addItem("Auto", "auto")
        for name in registry.available():
            self.ui.methodComboBox.addItem("U2AD" if name == "u2ad" else name, name)
        schedule = AdaptConfig()
        self.ui.adaptEpochsSpinBox.specialValueText = f"schedule default (CPU {schedule.cpu_epochs}, GPU {schedule.epochs})"

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        for selector in (self.ui.inputVolumeSelector, self.ui.cordSelector, self.ui.levelsSelector):
            selector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        for widget, signal in (
            (self.ui.cordSegmentComboBox, "currentIndexChanged(int)"),
            (self.ui.deviceComboBox, "currentIndexChanged(int)"),
            (self.ui.methodComboBox, "currentIndexChanged(int)"),
            (self.ui.firstLandmarkComboBox, "currentIndexChanged(int)"),
            (self.ui.secondLandmarkComboBox, "currentIndexChanged(int)"),
            (self.ui.mcSamplesSpinBox, "valueChanged(int)"),
            (self.ui.slicesSpinBox, "valueChanged(int)"),
            (self.ui.adaptEpochsSpinBox, "valueChanged(int)"),
            (self.ui.modelPathLineEdit, "currentPathChanged(QString)"),
            (self.ui.outputDirLineEdit, "currentPathChanged(QString)"),
            (self.ui.adaptedModelPathLineEdit, "currentPathChanged(QString)"),
            (self.ui.adaptManifestLineEdit, "currentPathChanged(QString)"),
        ):
            widget.connect(signal, self.updateParameterNodeFromGUI)

        self.ui.detectButton.connect("clicked(bool)", self.onDetect)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.adaptButton.connect("clicked(bool)", self.onAdapt)
        self.ui.addStudyButton.connect("clicked(bool)", self.onAddStudy)
        self.ui.removeStudyButton.connect("clicked(bool)", self.onRemoveStudy)
        self.ui.placeLandmarksButton.connect("clicked(bool)", self.onPlaceLandmarks)
        self.ui.fillLevelsButton.connect("clicked(bool)", self.onFillLevels)
        self.ui.installTorchButton.connect("clicked(bool)", self.onInstall)
        self.ui.segmentCordButton.connect("clicked(bool)", self.onSegmentCord)

        self.initializeParameterNode()
        self.startEnvironmentProbe()

    def onReload(self):
        """Reload U2ADSlicerLib too (Slicer's reload only reloads this file), submodules first."""
        for name in sorted((n for n in sys.modules if n == "U2ADSlicerLib" or n.startswith("U2ADSlicerLib.")), reverse=True):
            importlib.reload(sys.modules[name])
        ScriptedLoadableModuleWidget.onReload(self)

    def cleanup(self):
        """The module is closing (Slicer exits or reloads it): stop the job's whole process tree."""
        self._timer.stop()
        self._stopLoading()
        if self._job is not None:
            self._job.cancel()
            self._job = None
        if self._install is not None:
            self._install.cancel("Slicer closed the module")
            self._install = None
        if self._warm is not None:
            self._warm.stop()
            self._warm = None
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event):
        """A job belongs to the scene being closed: stop it, and load nothing into the next one."""
        if self._loading is not None:
            self._stopLoading()
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = "Detection cancelled: its scene was closed."
        if self._job is not None:
            self._job.request_cancel()
            self._jobOrphaned = True
        self._stopPlacing()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ------------------------------------------------------------ parameter node <-> GUI

    def initializeParameterNode(self):
        node = self.logic.getParameterNode()
        inputs = parameters.read_inputs(node)
        if inputs.volume is None:
            inputs.volume = parameters.default_volume(slicer.mrmlScene)
            parameters.write_inputs(node, inputs)
        self.setParameterNode(node)

    def setParameterNode(self, node):
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = node
        if node is not None:
            self.addObserver(node, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    @staticmethod
    def _setPath(lineEdit, path):
        """Only when it differs: setting a path field's text moves its cursor to the end."""
        if lineEdit.currentPath != path:
            lineEdit.currentPath = path

    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._updatingGUI:
            return
        if self._parameterNode is None:
            self._updateButtons()
            return
        self._updatingGUI = True
        try:
            settings = parameters.read_settings(self._parameterNode)
            inputs = parameters.read_inputs(self._parameterNode)
            self.ui.inputVolumeSelector.setCurrentNode(inputs.volume)
            self.ui.cordSelector.setCurrentNode(inputs.cord)
            self.ui.levelsSelector.setCurrentNode(inputs.levels)
            self._observeCord(inputs.cord)
            self._fillCordSegments(inputs.cord, settings.cord_segment_id)
            index = self.ui.deviceComboBox.findData(settings.device)
            self.ui.deviceComboBox.setCurrentIndex(max(index, 0))
            self.ui.methodComboBox.setCurrentIndex(max(self.ui.methodComboBox.findData(settings.method), 0))
            self.ui.firstLandmarkComboBox.currentText = settings.first_landmark
            self.ui.secondLandmarkComboBox.currentText = settings.second_landmark
            self.ui.mcSamplesSpinBox.value = settings.mc_samples
            self.ui.slicesSpinBox.value = settings.n_slices
            self.ui.adaptEpochsSpinBox.value = settings.adapt_epochs
            self._setPath(self.ui.modelPathLineEdit, settings.model_path)
            self._setPath(self.ui.outputDirLineEdit, settings.output_dir)
            self._setPath(self.ui.adaptedModelPathLineEdit, settings.adapted_model_path)
            self._setPath(self.ui.adaptManifestLineEdit, settings.adapt_manifest)
            self._fillStudyList()
            self._updateButtons(inputs)
        finally:
            self._updatingGUI = False
        self._writeBackFallbacks(settings)

    def _writeBackFallbacks(self, settings):
        """Where the panel shows a fallback (the first segment for a segment ID the cord lacks,
        Auto for a device this machine lacks), the parameter node gets it too: what the user
        sees is what the worker gets."""
        segment = self.ui.cordSegmentComboBox.currentData or ""
        device = self.ui.deviceComboBox.currentData or "auto"
        changed = False
        if segment != settings.cord_segment_id and self.ui.cordSegmentComboBox.count:
            settings.cord_segment_id, changed = segment, True
        if self._environment is not None and device != settings.device:
            settings.device, changed = device, True
        if changed:
            parameters.write_settings(self._parameterNode, settings)

    def updateParameterNodeFromGUI(self, *args):
        if self._parameterNode is None or self._updatingGUI:
            return
        inputs = parameters.Inputs(
            self.ui.inputVolumeSelector.currentNode(), self.ui.cordSelector.currentNode(), self.ui.levelsSelector.currentNode()
        )
        settings = parameters.read_settings(self._parameterNode)
        settings.cord_segment_id = self.ui.cordSegmentComboBox.currentData or ""
        settings.device = self.ui.deviceComboBox.currentData or "auto"
        settings.method = self.ui.methodComboBox.currentData or "u2ad"
        settings.first_landmark = self.ui.firstLandmarkComboBox.currentText
        settings.second_landmark = self.ui.secondLandmarkComboBox.currentText
        settings.mc_samples = self.ui.mcSamplesSpinBox.value
        settings.n_slices = self.ui.slicesSpinBox.value
        settings.adapt_epochs = self.ui.adaptEpochsSpinBox.value
        settings.model_path = self.ui.modelPathLineEdit.currentPath
        settings.output_dir = self.ui.outputDirLineEdit.currentPath
        settings.adapted_model_path = self.ui.adaptedModelPathLineEdit.currentPath
        settings.adapt_manifest = self.ui.adaptManifestLineEdit.currentPath
        wasModifying = self._parameterNode.StartModify()
        parameters.write_inputs(self._parameterNode, inputs)
        parameters.write_settings(self._parameterNode, settings)
        self._parameterNode.EndModify(wasModifying)

    def _observeCord(self, cord):
        """Follow the cord segmentation's segments (added, removed, renamed), as
        qMRMLSegmentSelectorWidget does."""
        if cord is self._observedCord:
            return
        events = (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved, slicer.vtkSegmentation.SegmentModified)
        if self._observedCord is not None:
            for event in events:
                self.removeObserver(self._observedCord, event, self.onCordSegmentsChanged)
        self._observedCord = cord if cord is not None and cord.IsA("vtkMRMLSegmentationNode") else None
        if self._observedCord is not None:
            for event in events:
                self.addObserver(self._observedCord, event, self.onCordSegmentsChanged)

    def onCordSegmentsChanged(self, caller, event):
        self.updateGUIFromParameterNode()

    def _fillCordSegments(self, cord, selected_id):
        combo = self.ui.cordSegmentComboBox
        combo.clear()
        is_segmentation = cord is not None and cord.IsA("vtkMRMLSegmentationNode")
        combo.enabled = is_segmentation
        if not is_segmentation:
            return
        segmentation = cord.GetSegmentation()
        for i in range(segmentation.GetNumberOfSegments()):
            combo.addItem(segmentation.GetNthSegment(i).GetName(), segmentation.GetNthSegmentID(i))
        index = combo.findData(selected_id)
        combo.setCurrentIndex(max(index, 0))

    def _fillStudyList(self):
        """The usable studies only; Remove and Adapt use the same list (parameters.usable_studies)."""
        self.ui.adaptStudiesList.clear()
        for study in parameters.usable_studies(self._parameterNode):
            levels = study.levels.GetName() if study.levels is not None else "no levels"
            self.ui.adaptStudiesList.addItem(f"{study.volume.GetName()}  |  {study.cord.GetName()}  |  {levels}")

    def _updateButtons(self, inputs=None):
        busy = self._job is not None or self._install is not None or self._levelsTask is not None
        self.ui.cancelButton.enabled = self._job is not None and not self._job.worker.cancelling
        if self._parameterNode is None:  # between scenes
            for button in (self.ui.detectButton, self.ui.adaptButton, self.ui.placeLandmarksButton, self.ui.fillLevelsButton, self.ui.segmentCordButton):
                button.enabled = False
            return
        inputs = inputs or parameters.read_inputs(self._parameterNode)
        ready = self._environment is not None and self._environment.ready
        self.ui.detectButton.enabled = not busy and ready and inputs.volume is not None and inputs.cord is not None
        settings = parameters.read_settings(self._parameterNode)
        has_studies = bool(settings.adapt_manifest) or bool(parameters.usable_studies(self._parameterNode))
        self.ui.adaptButton.enabled = not busy and ready and has_studies and bool(settings.adapted_model_path)
        self.ui.placeLandmarksButton.enabled = not busy and inputs.volume is not None
        self.ui.segmentCordButton.enabled = not busy and ready and inputs.volume is not None
        self.ui.fillLevelsButton.enabled = not busy and None not in (inputs.volume, inputs.cord, inputs.levels)
        self.ui.installTorchButton.enabled = not busy and self._probe is None and (self._environment is None or not self._environment.ready)

    # ------------------------------------------------------------ dependencies

    def startEnvironmentProbe(self):
        """Ask the worker's interpreter what it has, on a thread: importing torch takes seconds."""
        self.ui.environmentLabel.text = "checking PyTorch..."
        result = {}

        def run():
            try:
                result["env"] = dependencies.probe(worker_python(), worker_env())
            except Exception as exc:  # whatever breaks, the panel must say it and offer Install
                result["error"] = f"Cannot check the U2AD worker's Python ({exc}). Press 'Install PyTorch' to repair it."

        self._probe = (threading.Thread(target=run, daemon=True), result)
        self._probe[0].start()
        self._timer.start()

    def _finishProbe(self):
        thread, result = self._probe
        if thread.is_alive():
            return
        self._probe = None
        if "error" in result:
            self._environment = None
            self.ui.environmentLabel.text = result["error"]
            self._updateButtons()
            return
        self._environment = env = result["env"]
        self.ui.environmentLabel.text = env.summary()
        self._updatingGUI = True
        self.ui.deviceComboBox.clear()
        for value, label in env.device_choices():
            self.ui.deviceComboBox.addItem(label, value)
        self._updatingGUI = False
        self.updateGUIFromParameterNode()

    def onInstall(self):
        """PyTorch through the PyTorch extension (its own dialog and progress), then U2ADCore's
        other packages with pip in the background, Slicer's numpy/SimpleITK/vtk held in place."""
        env = self._environment
        try:
            if env is None or env.torch_version is None or env.torch_error is not None or env.torch_too_old:
                confirm = lambda question: slicer.util.confirmOkCancelDisplay(question, windowTitle="U2AD")
                if not dependencies.install_torch(confirm):
                    return
            missing = env.missing if env is not None else ()
            if missing:
                question = f"U2AD needs these Python packages: {', '.join(missing)}. Install them now (in the background)?"
                if not slicer.util.confirmOkCancelDisplay(question, windowTitle="U2AD"):
                    return
                self._installDir = Path(tempfile.mkdtemp(prefix="u2ad-install-"))
                self._install = dependencies.start_install(worker_python(), missing, self._installDir, worker_env())
                self.ui.environmentLabel.text = "Installing " + ", ".join(missing) + "..."
                self._updateButtons()
                self._timer.start()
                return
        except (RuntimeError, OSError) as exc:
            self._showError(str(exc))
            return
        self.startEnvironmentProbe()

    def _pollInstall(self):
        install = self._install
        install.poll()
        if install.last_log:
            self.ui.environmentLabel.text = install.last_log[-200:]
        if not install.finished:
            return
        self._install = None
        shutil.rmtree(self._installDir, ignore_errors=True)
        if install.result.status != "done":
            self._showError(f"Installing U2AD's packages failed: {install.result.message}")
        self.startEnvironmentProbe()

    # ------------------------------------------------------------ landmarks

    def onPlaceLandmarks(self):
        """Two unplaced points labelled e.g. C2 and T1, then place mode: the user clicks both."""
        first, second = self.ui.firstLandmarkComboBox.currentText, self.ui.secondLandmarkComboBox.currentText
        if VERTEBRAE.index(first) >= VERTEBRAE.index(second):
            slicer.util.errorDisplay(f"The first landmark ({first}) must lie above the second ({second}).")
            return
        points = self.ui.levelsSelector.currentNode()
        if points is not None and points.GetNumberOfControlPoints() > 0:
            question = f"'{points.GetName()}' has {points.GetNumberOfControlPoints()} points. Replace them by two new landmarks?"
            if not slicer.util.confirmOkCancelDisplay(question, windowTitle="U2AD"):
                return
        if points is None:
            points = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", LEVELS_NODE_NAME)
            points.CreateDefaultDisplayNodes()
            self.ui.levelsSelector.setCurrentNode(points)
        self._stopPlacing()
        points.RemoveAllControlPoints()
        for label in (first, second):
            index = points.AddControlPoint(vtk.vtkVector3d(0, 0, 0), label)
            points.UnsetNthControlPointPosition(index)
        self._placing = points
        self.addObserver(points, points.PointPositionDefinedEvent, self.onLandmarkPlaced)
        slicer.modules.markups.logic().SetActiveList(points)
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        interaction.SetPlaceModePersistence(1)
        interaction.SetCurrentInteractionMode(interaction.Place)
        self.addObserver(interaction, interaction.InteractionModeChangedEvent, self.onInteractionModeChanged)
        self.ui.statusLabel.text = f"Click the centre of the {first} body, then of the {second} body, in a sagittal view."

    def _stopPlacing(self):
        """Forget a placement in progress (finished, abandoned, or its scene closed)."""
        points, self._placing = self._placing, None
        if points is None:
            return
        self.removeObserver(points, points.PointPositionDefinedEvent, self.onLandmarkPlaced)
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        self.removeObserver(interaction, interaction.InteractionModeChangedEvent, self.onInteractionModeChanged)

    def onInteractionModeChanged(self, interaction, event):
        if interaction.GetCurrentInteractionMode() != interaction.Place and self._placing is not None:
            self._stopPlacing()  # the user left place mode before clicking both landmarks

    def onLandmarkPlaced(self, points, event):
        undefined = [i for i in range(points.GetNumberOfControlPoints()) if points.GetNthControlPointPositionStatus(i) != points.PositionDefined]
        if undefined:
            return
        self._stopPlacing()
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        interaction.SetPlaceModePersistence(0)
        interaction.SetCurrentInteractionMode(interaction.ViewTransform)
        self.onFillLevels()

    def onFillLevels(self):
        """Fill in the levels between the landmarks: the slow part (files, the prior) on a thread."""
        inputs = parameters.read_inputs(self._parameterNode)
        settings = parameters.read_settings(self._parameterNode)
        try:
            compute = landmarks.prepare_landmarks(slicer.mrmlScene, inputs.levels, inputs.volume, inputs.cord, settings.cord_segment_id)
        except (U2ADError, OSError) as exc:
            self._showError(f"Could not fill in the vertebral levels: {exc}")
            return
        result = {}

        def run():
            try:
                result["levels"] = compute()
            except Exception as exc:  # shown in the panel, in words
                result["error"] = str(exc)

        self._levelsTask = (threading.Thread(target=run, daemon=True), result, inputs.levels)
        self._levelsTask[0].start()
        self.ui.statusLabel.text = "Filling in the levels between the landmarks..."
        self._updateButtons()
        self._timer.start()

    def _pollLevels(self):
        thread, result, points = self._levelsTask
        if thread.is_alive():
            return
        self._levelsTask = None
        if "error" in result:
            self._showError(f"Could not fill in the vertebral levels: {result['error']}")
        elif points.GetScene() is not slicer.mrmlScene or slicer.mrmlScene.GetNodeByID(points.GetID()) is not points:
            self.ui.statusLabel.text = "The landmark list was removed before its levels were filled in."
        else:
            levels = result["levels"]
            landmarks.fill_markups(points, levels)
            filled = ", ".join(levels.inferred) or "none"
            self.ui.statusLabel.text = f"Levels: {', '.join(levels.bodies)} (filled in from the prior: {filled}). Drag any point to correct it."
        self._updateButtons()

    # ------------------------------------------------------------ running the worker

    def _start(self, kind, job):
        self._job, self._jobKind, self._jobOrphaned = job, kind, False
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = f"{kind} started..."
        self._updateButtons()
        self._timer.start()

    def onDetect(self):
        inputs = parameters.read_inputs(self._parameterNode)
        settings = parameters.read_settings(self._parameterNode)
        self.ui.patientScoreLabel.text = self.ui.patientVerdictLabel.text = "-"
        try:
            if self._warm is None:
                self._warm = WarmSession(worker_python())
            self._start("Detection", pipeline.start_detection(slicer.mrmlScene, inputs, settings, session=self._warm))
        except (U2ADError, OSError) as exc:
            self._showError(str(exc))

    def onSegmentCord(self):
        """Segment the cord of the chosen volume in the worker (progress and Cancel as for
        detection); the result becomes the cord input."""
        inputs = parameters.read_inputs(self._parameterNode)
        settings = parameters.read_settings(self._parameterNode)
        try:
            self._start("Cord segmentation", pipeline.start_cord_segmentation(slicer.mrmlScene, inputs.volume, settings))
        except (U2ADError, OSError) as exc:
            self._showError(str(exc))

    def onAddStudy(self):
        inputs = parameters.read_inputs(self._parameterNode)
        if inputs.volume is None or inputs.cord is None:
            self._showError("Choose a T2 volume and its spinal cord above, then add them as a study.")
            return
        studies = parameters.usable_studies(self._parameterNode)
        studies.append(parameters.StudyNodes(inputs.volume, inputs.cord, inputs.levels))
        parameters.write_studies(self._parameterNode, studies)

    def onRemoveStudy(self):
        parameters.remove_study(self._parameterNode, self.ui.adaptStudiesList.currentRow)

    def onAdapt(self):
        settings = parameters.read_settings(self._parameterNode)
        manifest = settings.adapt_manifest
        studies = Path(manifest) if manifest else parameters.usable_studies(self._parameterNode)
        try:
            job = pipeline.start_adaptation(slicer.mrmlScene, studies, Path(settings.adapted_model_path), settings)
            self._start("Adaptation", job)
        except (U2ADError, OSError) as exc:
            self._showError(str(exc))

    def onCancel(self):
        """Ask the worker's process tree to stop and return at once; polling finishes the job."""
        if self._job is None:
            return
        if self._loading is not None:
            self._stopLoading()
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = "Detection cancelled; nothing was kept."
            self._updateButtons()
            return
        self._job.request_cancel()
        self.ui.statusLabel.text = f"Cancelling {self._jobKind.lower()}..."
        self._updateButtons()

    def onPoll(self):
        if self._probe is not None:
            self._finishProbe()
        if self._install is not None:
            self._pollInstall()
        if self._levelsTask is not None:
            self._pollLevels()
        if self._job is None or self._loading is not None:
            if self._probe is None and self._install is None and self._levelsTask is None:
                self._timer.stop()
            return
        worker = self._job.worker
        worker.poll()
        if worker.last_progress is not None and not worker.cancelling:
            ev = worker.last_progress
            if ev.fraction is not None:
                self.ui.progressBar.value = int(round(100 * ev.fraction))
            self.ui.statusLabel.text = describe_progress(ev)
        if worker.finished:
            if self._prefetchOutputs():
                return
            self._finishJob()

    def _prefetchOutputs(self):
        """Read a finished detection's output volumes on a thread first; True while reading."""
        job = self._job
        if not isinstance(job, pipeline.DetectionJob) or job.worker.result.status != "done" or self._jobOrphaned:
            return False
        if self._prefetch is None:
            result = {}
            self._prefetch = (threading.Thread(target=lambda: result.update(pipeline.read_outputs(job.out_dir)), daemon=True), result)
            self._prefetch[0].start()
            self.ui.statusLabel.text = "Loading the results..."
        return self._prefetch[0].is_alive()

    def _finishJob(self):
        prefetched = self._prefetch[1] if self._prefetch is not None else None
        self._prefetch = None
        if isinstance(self._job, pipeline.DetectionJob) and not self._jobOrphaned:
            # The job stays current while its nodes are added, so Cancel and closing the scene stop it.
            self._loading = pipeline.finish_steps(slicer.mrmlScene, self._job, prefetched)
            self._loadTimer.start()
            return
        job, self._job = self._job, None
        if self._jobOrphaned:
            job.discard()
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = f"{self._jobKind} cancelled: its scene was closed."
            self._updateButtons()
            return
        try:
            if isinstance(job, pipeline.CordJob):
                cord = pipeline.finish_cord_segmentation(slicer.mrmlScene, job)
                self.ui.cordSelector.setCurrentNode(cord)
                self.ui.statusLabel.text = f"Cord segmented: '{cord.GetName()}' is selected. Check it (it must include any lesion) and edit it if needed."
            else:
                model = pipeline.finish_adaptation(job)
                settings = parameters.read_settings(self._parameterNode)
                settings.model_path = str(model)
                parameters.write_settings(self._parameterNode, settings)
                self.ui.statusLabel.text = f"Adapted model saved to {model} and selected for detection."
            self.ui.progressBar.value = 100
        except Cancelled:
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = f"{self._jobKind} cancelled; nothing was kept."
        except (U2ADError, OSError) as exc:
            self._showError(str(exc))
        self._updateButtons()

    def onLoadStep(self):
        """Add the next group of a finished detection's nodes; the last step shows the result."""
        try:
            next(self._loading)
            return
        except StopIteration as done:
            outputs, failure = done.value, None
        except (U2ADError, OSError) as exc:  # Cancelled included
            outputs, failure = None, exc
        self._loading = None
        self._loadTimer.stop()
        job, self._job = self._job, None
        if outputs is not None:
            self.logic.show(job.inputs.volume, outputs)
            self._showResult(outputs.summary)
            self.ui.progressBar.value = 100
        elif isinstance(failure, Cancelled):
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = f"{self._jobKind} cancelled; nothing was kept."
        else:
            self._showError(str(failure))
        self._updateButtons()

    def _stopLoading(self):
        """Stop adding a detection's nodes: those already added are removed, its folder too."""
        if self._loading is None:
            return
        self._loadTimer.stop()
        loading, self._loading, self._job = self._loading, None, None
        loading.close()

    def _showResult(self, summary):
        self.ui.patientScoreLabel.text = f"{summary.patient_score:.4f}" + (
            f" (threshold {summary.patient_threshold:.4f})" if summary.patient_threshold is not None else ""
        )
        answer = summary.patient_yes_no
        self.ui.patientVerdictLabel.text = f"{answer.upper()}: {summary.patient_verdict}" if answer else summary.patient_verdict
        self.ui.statusLabel.text = "Detection finished: anomaly map, candidates, segment scores and AnoCurve are next to the study."

    def _showError(self, message):
        """In red; the message is escaped (a path or name holding '<' or '&' shows as it is)."""
        self.ui.statusLabel.text = f"<span style='color:#c0392b'>{html.escape(message)}</span>"


class U2ADSlicerTest(ScriptedLoadableModuleTest):
    """The module's self-test (also the ctest registered by slicer_add_python_unittest).

    It runs the tests shipped with the module (Testing/Python beside this file, installed with
    it), not the repository's: through KitwareMedical's SlicerPythonTestRunner when that
    extension is installed (pytest in a separate Slicer process: no cached modules, the user's
    scene untouched), otherwise their detection check in this process, in its own scene.
    """

    def runTest(self):
        tests = Path(__file__).resolve().parent / "Testing" / "Python"
        if not tests.is_dir():
            raise AssertionError(f"{tests}: the module's tests are not installed next to it")
        try:
            from SlicerPythonTestRunnerLib import RunnerLogic, RunSettings
        except ImportError:
            self.delayDisplay("SlicerPythonTestRunner is not installed: running the detection check in this process")
            sys.path.insert(0, str(tests))
            try:
                import test_u2adslicer_module
            finally:
                sys.path.remove(str(tests))
            test_u2adslicer_module.run_without_pytest()
            self.delayDisplay("U2AD detection check passed")
            return
        results = RunnerLogic().runAndWaitFinished(tests, RunSettings(doUseMainWindow=False, doMinimizeMainWindow=False))
        self.assertGreater(results.executedNumber, 0, f"no test ran in {tests}: {results.getSummaryString()}")
        self.assertEqual(results.failuresNumber, 0, results.getFailingCasesString())
        self.delayDisplay(f"U2AD tests: {results.getSummaryString()}")
