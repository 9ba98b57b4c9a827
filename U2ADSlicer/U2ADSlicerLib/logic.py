"""The module's logic without Qt: what the Slicer logic class inherits and batch scripts use.

`U2ADLogic(scene).process(volume, cord, levels, model, device, ...)` is the blocking batch API
(`Slicer --no-main-window --python-script`); the widget uses the same pipeline, non-blocking.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

from . import mrml, parameters, pipeline
from .parameters import Inputs, Settings
from .worker import WorkerMessage

PathLike = Union[str, Path]


class U2ADLogic:
    """Detection and adaptation on one MRML scene."""

    def __init__(self, scene):
        self.scene = scene

    def parameter_node(self):
        return parameters.get_parameter_node(self.scene)

    def process(
        self,
        volume,
        cord,
        levels=None,
        model: Optional[PathLike] = None,
        device: str = "auto",
        *,
        mc_samples: Optional[int] = None,
        n_slices: Optional[int] = None,
        cord_segment_id: str = "",
        output_dir: Optional[PathLike] = None,
        on_message: Optional[Callable[[WorkerMessage], None]] = None,
        python: Optional[str] = None,
        timeout_s: Optional[float] = None,
    ) -> pipeline.DetectionOutputs:
        """Detect T2 hyperintensity and return the output nodes (blocking).

        `model` None uses the shipped model; `mc_samples`/`n_slices` None keep the defaults of the
        typed config; `output_dir` keeps the worker's files (result.json, maps, report) there.
        """
        defaults = Settings()
        settings = Settings(
            model_path=str(model or ""),
            device=device,
            mc_samples=defaults.mc_samples if mc_samples is None else mc_samples,
            n_slices=defaults.n_slices if n_slices is None else n_slices,
            cord_segment_id=cord_segment_id,
            output_dir=str(output_dir or ""),
        )
        outputs = pipeline.process(
            self.scene, Inputs(volume, cord, levels), settings, on_message=on_message, python=python, timeout_s=timeout_s
        )
        self.show(volume, outputs)
        return outputs

    def show(self, volume, outputs: pipeline.DetectionOutputs, opacity: float = mrml.DisplaySettings().overlay_opacity) -> None:
        """Overlay the anomaly map on the volume and put the chart in the plot view (where views exist)."""
        mrml.show_in_slice_views(self.scene, volume, outputs.anomaly_map, opacity)
        mrml.show_chart(self.scene, outputs.chart)

    def adapt(
        self,
        studies: Union[list[parameters.StudyNodes], Path],
        destination: PathLike,
        model: Optional[PathLike] = None,
        device: str = "auto",
        *,
        epochs: Optional[int] = None,
        on_message: Optional[Callable[[WorkerMessage], None]] = None,
        python: Optional[str] = None,
        timeout_s: Optional[float] = None,
    ) -> Path:
        """Adapt the model to loaded studies (or a manifest) and save it to `destination` (blocking).

        `epochs` None keeps the adaptation schedule's own (short on a CPU, the paper's on a GPU).
        """
        settings = Settings(model_path=str(model or ""), device=device, adapt_epochs=epochs or 0)
        return pipeline.adapt(self.scene, studies, Path(destination), settings, on_message=on_message, python=python, timeout_s=timeout_s)
