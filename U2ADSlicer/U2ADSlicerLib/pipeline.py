"""Detection and adaptation as the module runs them: export inputs, run the worker, load outputs.

Each run gets a private work folder. The worker writes only there, so cancelling (terminate the
process, remove the folder) can never leave half-written results where the user looks; finished
results are copied to a user-chosen folder through U2ADCore's atomic writers. The GUI starts a
job and polls it; `process` and `adapt` are the same steps, blocking, for batch mode.
"""
from __future__ import annotations

import csv
import io
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Optional

import slicer

from u2adcore.config import AdaptConfig, ScoringConfig
from u2adcore.errors import Cancelled, InputError, U2ADError
from u2adcore.io.atomic import atomic_path, staged_output_dir, write_text

from . import mrml, results
from .parameters import OUTPUT_ATTRIBUTE, Inputs, Settings, StudyNodes
from .worker import DeferredWorker, WorkerMessage, WorkerProcess, adapt_command, detect_command, segment_cord_command, worker_python

RESULT_FOLDER_NAME = "U2AD results"


class WorkerFailed(U2ADError):
    """The worker reported an error; the message is the worker's, readable as is."""


@dataclass
class DetectionOutputs:
    """The nodes one detection produced, plus its summary (scores, verdicts, curve)."""

    anomaly_map: object
    candidates: object
    table: object
    chart: object
    summary: results.DetectionSummary
    folder_item: int
    output_dir: Optional[Path] = None  # where the files were kept, if the user asked


@dataclass
class Job:
    """A running worker, the private folder it writes into, and which node each input file holds."""

    worker: WorkerProcess
    workdir: Path
    exported: dict = field(default_factory=dict)  # {exported file Path: node}, to name nodes in errors

    def discard(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def cancel(self) -> None:
        """Stop the worker's process tree and remove the work folder (blocking: batch mode)."""
        self.worker.cancel()
        self.discard()

    def request_cancel(self) -> None:
        """Ask the worker to stop and return at once (the GUI): polling finishes the job as
        cancelled, and finishing it removes the work folder."""
        self.worker.request_cancel()


@dataclass
class DetectionJob(Job):
    inputs: Inputs = field(default_factory=Inputs)
    settings: Settings = field(default_factory=Settings)

    @property
    def out_dir(self) -> Path:
        return self.workdir / "result"


@dataclass
class AdaptationJob(Job):
    destination: Optional[Path] = None  # where the user wants the adapted model

    @property
    def staged_model(self) -> Path:
        return self.workdir / "adapted.pt"


def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="u2ad-"))


def _model_arg(settings: Settings) -> Optional[Path]:
    if not settings.model_path:
        return None
    model = Path(settings.model_path)
    if not model.is_file():
        raise InputError(model, "model file not found")
    return model


def _export_study(scene, volume, cord, levels, folder: Path, exported: dict, cord_segment_id: str = "", writes: Optional[list] = None) -> dict:
    """Write one study's nodes as files the worker reads; returns their paths and the levels kind.

    Each file is recorded in `exported` ({path: node}). With `writes`, the volumes are only
    snapshotted here (milliseconds) and (snapshot, path) pairs appended for `write_all` to write
    on a background thread; the small landmark file is written at once.
    """
    if volume is None:
        raise InputError(None, "choose the T2 volume")
    if cord is None:
        raise InputError(None, f"choose the spinal cord segmentation for {volume.GetName()}")
    folder.mkdir(parents=True, exist_ok=True)
    # Uncompressed: the files live seconds, and gzip is most of the time it takes to write them.
    pending = [(mrml.snapshot_volume(volume), folder / "image.nii"), (mrml.cord_labelmap(scene, cord, volume, cord_segment_id), folder / "cord.nii")]
    paths = {"image": pending[0][1], "cord": pending[1][1], "levels": None, "levels_kind": None}
    if writes is None:
        write_all(pending)
    else:
        writes.extend(pending)
    if levels is not None and levels.GetNumberOfControlPoints() > 0:
        paths["levels_kind"] = mrml.levels_kind(levels)
        paths["levels"] = mrml.write_node(levels, folder / "levels.mrk.json")
    for key, node in (("image", volume), ("cord", cord), ("levels", levels)):
        if paths[key] is not None:
            exported[paths[key]] = node
    return paths


def write_all(writes: list) -> None:
    """Write (node outside the scene, path) pairs: safe on a background thread."""
    for node, path in writes:
        mrml.write_node(node, path)


# ---------------------------------------------------------------- detection


def start_detection(scene, inputs: Inputs, settings: Settings, *, python: Optional[str] = None, session=None) -> DetectionJob:
    """Snapshot the inputs, then write them and start `u2ad detect`, both in the background (the
    GUI thread only copies voxels in memory). `session`: a warm.WarmSession that keeps the worker
    and its model loaded between detections."""
    model = _model_arg(settings)
    workdir = _workdir()
    exported: dict = {}
    writes: list = []
    try:
        files = _export_study(scene, inputs.volume, inputs.cord, inputs.levels, workdir / "input", exported, settings.cord_segment_id, writes)
        argv = detect_command(
            python or worker_python(),
            files["image"],
            files["cord"],
            workdir / "result",
            levels=files["levels"],
            levels_kind=files["levels_kind"],
            model=model,
            device=settings.device,
            mc_samples=settings.mc_samples,
            n_slices=settings.n_slices,
            method=settings.method,
        )
        if session is None:
            worker = DeferredWorker(lambda: write_all(writes), argv)
        else:
            def prepare():
                write_all(writes)
                session.warm_up()  # start it off the GUI thread; submit is then immediate

            worker = DeferredWorker(prepare, argv, start=lambda full: session.submit(full[3:]))
        return DetectionJob(worker, workdir, exported, inputs, settings)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _raise_for(job: Job) -> None:
    result = job.worker.result
    if result.status == "cancelled":
        raise Cancelled(result.message or "cancelled")
    if result.status != "done":
        raise WorkerFailed(mrml.readable(result.message, job.exported))


def read_outputs(out_dir: Path) -> dict:
    """The output volumes read into nodes outside any scene: the slow part of loading, safe on a
    background thread. load_detection(..., prefetched=) then only adds them to the scene."""
    out_dir = Path(out_dir)
    return {
        results.ANOMALY_FILE: mrml.read_volume_detached(out_dir / results.ANOMALY_FILE),
        results.CANDIDATES_FILE: mrml.read_volume_detached(out_dir / results.CANDIDATES_FILE, labelmap=True),
    }


def _node_ids(scene) -> set:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def run_steps(steps: Generator):
    """Drive a step generator (load_steps, finish_steps) to its end in one call: batch mode and
    tests. Returns the generator's return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def load_steps(scene, out_dir: Path, volume, prefetched: Optional[dict] = None, keep_to: Optional[Path] = None) -> Generator[None, None, DetectionOutputs]:
    """load_detection one node group per step, so that the panel can run one step per event-loop
    turn instead of stalling the GUI for the whole load (a generator; its return value is the
    DetectionOutputs). Closing it before the end, or an error in a step, removes every node its
    steps added: a cancelled load or a closed scene keeps nothing. `keep_to`: copy the output
    files there in the last step, with the subject-hierarchy placement, so that only a complete
    load keeps files."""
    out_dir = Path(out_dir)
    results.check_outputs(out_dir)
    summary = results.read_summary(out_dir)
    saved = results.read_result(out_dir / results.RESULT_FILE).get("settings") or {}
    display_max = float((saved.get("scoring") or {}).get("display_max", ScoringConfig().display_max))
    base = volume.GetName()
    prefetched = prefetched or {}
    yield
    before = _node_ids(scene)
    try:
        amap = mrml.load_volume(scene, out_dir / results.ANOMALY_FILE, f"{base} U2AD anomaly map", detach=True,
                                read=prefetched.get(results.ANOMALY_FILE), display=False)
        amap.SetAttribute(OUTPUT_ATTRIBUTE, "anomaly map")
        yield
        mrml.show_anomaly_map(scene, amap, display_max)
        yield
        candidates = mrml.candidates_segmentation(scene, out_dir / results.CANDIDATES_FILE, volume, f"{base} U2AD candidates",
                                                  read=prefetched.get(results.CANDIDATES_FILE))
        yield
        table = mrml.scores_table(scene, summary, f"{base} U2AD segment scores")
        yield
        chart, tables, series = mrml.curve_chart(scene, summary, f"{base} U2AD AnoCurve")
        yield
        kept = keep_files(out_dir, keep_to) if keep_to is not None else None
        folder = mrml.place_beside(scene, volume, [amap, candidates, table, chart, *tables, *series], RESULT_FOLDER_NAME)
    except BaseException:  # GeneratorExit included: the load was stopped
        for node_id in _node_ids(scene) - before:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)
        raise
    return DetectionOutputs(amap, candidates, table, chart, summary, folder, kept)


def load_detection(scene, out_dir: Path, volume, prefetched: Optional[dict] = None) -> DetectionOutputs:
    """Nodes from a detection output folder, filed next to `volume` in the subject hierarchy."""
    return run_steps(load_steps(scene, out_dir, volume, prefetched))


_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def folder_name(node_name: str) -> str:
    """A node name as one folder name valid on every system: DICOM names such as "3: T2 SAG" or
    "T2/ax" would be invalid on Windows or create nested folders. Characters Windows refuses
    become "_", trailing dots and spaces go, reserved device names get a "_" prefix."""
    cleaned = "".join("_" if (ch in '<>:"/\\|?*' or ord(ch) < 32) else ch for ch in node_name).strip().rstrip(". ")
    if not cleaned or cleaned in (".", ".."):
        return "study"
    if cleaned.split(".")[0].upper() in _WINDOWS_RESERVED:
        cleaned = "_" + cleaned
    return cleaned


def keep_files(out_dir: Path, destination: Path) -> Path:
    """Copy a finished output folder to `destination` in one atomic step (refuses foreign files)."""
    with staged_output_dir(destination, owned=tuple(p.name for p in Path(out_dir).iterdir())) as stage:
        for item in Path(out_dir).iterdir():
            shutil.copy2(item, stage / item.name)
    return Path(destination)


def finish_steps(scene, job: DetectionJob, prefetched: Optional[dict] = None) -> Generator[None, None, DetectionOutputs]:
    """finish_detection as load_steps' steps (the panel runs one per event-loop turn); the work
    folder is removed when the steps end or are closed."""
    try:
        _raise_for(job)
        keep_to = Path(job.settings.output_dir) / folder_name(job.inputs.volume.GetName()) if job.settings.output_dir else None
        return (yield from load_steps(scene, job.out_dir, job.inputs.volume, prefetched, keep_to))
    finally:
        job.discard()


def finish_detection(scene, job: DetectionJob, prefetched: Optional[dict] = None) -> DetectionOutputs:
    """After the worker ended: load its outputs (or raise its error / Cancelled), then clean up.
    `prefetched`: read_outputs(job.out_dir), done on a background thread."""
    return run_steps(finish_steps(scene, job, prefetched))


def process(
    scene,
    inputs: Inputs,
    settings: Settings = Settings(),
    *,
    on_message: Optional[Callable[[WorkerMessage], None]] = None,
    python: Optional[str] = None,
    timeout_s: Optional[float] = None,
) -> DetectionOutputs:
    """Detection, blocking: batch mode (`Slicer --no-main-window --python-script`) and tests."""
    job = start_detection(scene, inputs, settings, python=python)
    try:
        job.worker.wait(on_message, timeout_s)
    except BaseException:
        job.cancel()
        raise
    return finish_detection(scene, job)


# ---------------------------------------------------------------- adaptation


def write_manifest(scene, studies: list[StudyNodes], folder: Path, exported: dict) -> Path:
    """Export loaded studies and list them in a manifest (docs/ARCHITECTURE.md, data)."""
    if not studies:
        raise InputError(None, "choose at least one study to adapt to")
    rows = []
    for i, study in enumerate(studies):
        files = _export_study(scene, study.volume, study.cord, study.levels, folder / f"study{i:03d}", exported)
        rows.append(
            {
                "id": study.volume.GetName(),
                "image": files["image"].relative_to(folder).as_posix(),
                "cord": files["cord"].relative_to(folder).as_posix(),
                "levels": files["levels"].relative_to(folder).as_posix() if files["levels"] else "",
                "levels_kind": files["levels_kind"] or "",
            }
        )
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    manifest = folder / "manifest.csv"
    write_text(manifest, text.getvalue())
    return manifest


def stage2_start_for(epochs: int) -> int:
    """The epoch where EU+AU starts when the user sets the epochs: the paper's proportion
    (AdaptConfig.stage2_start / epochs, 150 of 200), so stage 2 always gets its last quarter."""
    paper = AdaptConfig()
    return int(epochs * paper.stage2_start / paper.epochs)


def start_adaptation(
    scene,
    studies: list[StudyNodes] | Path,
    destination: Path,
    settings: Settings,
    *,
    python: Optional[str] = None,
) -> AdaptationJob:
    """Start `u2ad adapt` on loaded studies (exported to a manifest) or on a manifest file."""
    model = _model_arg(settings)
    destination = Path(destination)
    if destination.suffix != ".pt":
        raise InputError(destination, "the adapted model must be saved as a .pt file")
    workdir = _workdir()
    exported: dict = {}
    try:
        if isinstance(studies, Path):
            if not studies.is_file():
                raise InputError(studies, "manifest not found")
            manifest = studies
        else:
            manifest = write_manifest(scene, studies, workdir / "studies", exported)
        job = AdaptationJob(None, workdir, exported, destination)
        epochs = settings.adapt_epochs or None
        argv = adapt_command(
            python or worker_python(), manifest, job.staged_model, model=model, device=settings.device,
            epochs=epochs, stage2_start=None if epochs is None else stage2_start_for(epochs),
        )
        job.worker = WorkerProcess(argv)
        return job
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def finish_adaptation(job: AdaptationJob) -> Path:
    """Copy the adapted model, and the files named after it (loss curve, uncertainty maps), to
    where the user chose, each atomically; then clean up."""
    try:
        _raise_for(job)
        if not job.staged_model.is_file():
            raise WorkerFailed(f"{job.destination}: the adaptation finished without writing the model")
        stem = job.staged_model.stem
        for produced in sorted(job.workdir.glob(f"{stem}*")):
            target = job.destination.with_name(job.destination.stem + produced.name[len(stem):])
            with atomic_path(target) as tmp:
                shutil.copyfile(produced, tmp)
        return job.destination
    finally:
        job.discard()


def adapt(
    scene,
    studies: list[StudyNodes] | Path,
    destination: Path,
    settings: Settings = Settings(),
    *,
    on_message: Optional[Callable[[WorkerMessage], None]] = None,
    python: Optional[str] = None,
    timeout_s: Optional[float] = None,
) -> Path:
    """Adaptation, blocking (batch mode)."""
    job = start_adaptation(scene, studies, destination, settings, python=python)
    try:
        job.worker.wait(on_message, timeout_s)
    except BaseException:
        job.cancel()
        raise
    return finish_adaptation(job)


# ---------------------------------------------------------------- cord segmentation

CORD_SEGMENT_NAME = "spinal cord"


@dataclass
class CordJob(Job):
    volume: object = None

    @property
    def out_file(self) -> Path:
        return self.workdir / "cord.nii.gz"


def start_cord_segmentation(scene, volume, settings: Settings, *, python: Optional[str] = None) -> CordJob:
    """Export the volume and start `u2ad segment-cord` in the background."""
    if volume is None:
        raise InputError(None, "choose the T2 volume to segment")
    workdir = _workdir()
    try:
        image = mrml.write_node(volume, workdir / "input" / "image.nii.gz")
        job = CordJob(None, workdir, {image: volume}, volume)
        job.worker = WorkerProcess(segment_cord_command(python or worker_python(), image, job.out_file, device=settings.device))
        return job
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def finish_cord_segmentation(scene, job: CordJob):
    """The worker's cord mask as an editable segmentation with one segment "spinal cord",
    on the volume's geometry and filed beside it; then clean up."""
    try:
        _raise_for(job)
        produced = Path(job.worker.result.outputs.get("cord") or job.out_file)
        labels = mrml.load_volume(scene, produced, f"{job.volume.GetName()} cord labels", labelmap=True, detach=True)
        try:
            node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{job.volume.GetName()} spinal cord")
            node.CreateDefaultDisplayNodes()
            node.SetReferenceImageGeometryParameterFromVolumeNode(job.volume)
            if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, node):
                raise WorkerFailed(f"{produced}: could not import the cord mask into a segmentation")
            segmentation = node.GetSegmentation()
            if segmentation.GetNumberOfSegments() != 1:
                raise WorkerFailed(f"the cord segmentation of {job.volume.GetName()} is empty")
            segmentation.GetNthSegment(0).SetName(CORD_SEGMENT_NAME)
            segmentation.GetNthSegment(0).SetColor(0.9, 0.75, 0.4)
        finally:
            scene.RemoveNode(labels)
        mrml.place_beside(scene, job.volume, [node], "U2AD cord")
        return node
    finally:
        job.discard()
