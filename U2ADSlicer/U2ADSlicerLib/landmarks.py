"""The one-click levels helper: two placed vertebral landmarks in, every body centre out.

Clinics rarely mark all seven levels. The user places two bodies (e.g. C2 and T1); U2ADCore's
levels reader fills the bodies between them from the PAM50 prior and moves each onto the cord
centre. The filled points go back into the same markups list, so they stay editable, and each
says in its description whether it was placed or filled in.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

from u2adcore.config import VERTEBRAE
from u2adcore.errors import InputError
from u2adcore.io.images import read_image
from u2adcore.levels.levels import Levels, read_levels

from . import mrml

PLACED = "placed"
FILLED = "filled in from the PAM50 prior"


def complete_landmarks(scene, markups, volume, cord, cord_segment_id: str = "") -> Levels:
    """Replace the list's points by all body centres the placed ones determine; returns the Levels.

    Errors (labels that name no level, points outside the image, a single point) come from
    U2ADCore as InputError naming the problem. Blocking; the panel runs the same three steps
    with the middle one on a thread (prepare_landmarks).
    """
    levels = prepare_landmarks(scene, markups, volume, cord, cord_segment_id)()
    fill_markups(markups, levels)
    return levels


def prepare_landmarks(scene, markups, volume, cord, cord_segment_id: str = "") -> Callable[[], Levels]:
    """Snapshot what the levels need (fast, on the GUI thread) and return the slow part, safe on
    a background thread: write the files, read the levels from the prior. fill_markups(markups,
    levels) then writes the result back (GUI thread)."""
    image, cord_labels = mrml.snapshot_volume(volume), mrml.cord_labelmap(scene, cord, volume, cord_segment_id)
    folder = Path(tempfile.mkdtemp(prefix="u2ad-levels-"))
    points_path = mrml.write_node(markups, folder / "levels.mrk.json")

    def compute() -> Levels:
        try:
            exported = {
                mrml.write_node(image, folder / "image.nii.gz"): volume,
                mrml.write_node(cord_labels, folder / "cord.nii.gz"): cord,
                points_path: markups,
            }
            image_path, cord_path, _ = exported
            try:
                return read_levels(points_path, None, read_image(image_path), read_image(cord_path, what="cord mask"))
            except InputError as exc:  # name the node the user knows, not the temporary file
                raise InputError(mrml.node_of_path(exc.path, exported), exc.problem) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return compute


def fill_markups(markups, levels: Levels) -> None:
    """Write every known body centre into the list, superior first, saying which were filled in."""
    names = [v for v in VERTEBRAE if v in levels.bodies]
    mrml.set_markups_points(
        markups,
        names,
        [levels.bodies[n] for n in names],
        [FILLED if n in levels.inferred else PLACED for n in names],
    )


def load_levels_file(scene, path: Path, kind: Optional[str], image_path: Path, cord_path: Path, name: str = "levels"):
    """A levels file (a .mrk.json point list, or a disc/body label image such as SCT's) as a
    markups list of body centres, completed from the prior like the one-click helper."""
    levels = read_levels(path, kind, read_image(image_path), read_image(cord_path, what="cord mask"))
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    markups.CreateDefaultDisplayNodes()
    fill_markups(markups, levels)
    return markups
