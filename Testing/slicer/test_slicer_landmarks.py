"""The levels helper on a real study: two placed bodies become C2..T2, editable, in the same list."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

from u2adcore.errors import InputError
from U2ADSlicerLib import landmarks, mrml

pytestmark = pytest.mark.realdata


def _label_points_lps(path) -> dict[int, np.ndarray]:
    image = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(image)
    return {int(arr[tuple(z)]): np.array(image.TransformIndexToPhysicalPoint([int(i) for i in z[::-1]])) for z in np.argwhere(arr > 0)}


def test_two_placed_bodies_are_completed_from_the_prior(scene, errsm):
    subject = errsm["errsm_11"]
    volume = mrml.load_volume(scene, subject["image"], "t2")
    cord = mrml.load_volume(scene, subject["cord"], "cord", labelmap=True)
    marked = _label_points_lps(subject["landmarks"])  # C2 = 2, T2 = 9 (SCT convention)
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "levels")
    mrml.set_markups_points(points, ["C2", "T2"], [marked[2], marked[9]], ["", ""])

    levels = landmarks.complete_landmarks(scene, points, volume, cord)

    labels = [points.GetNthControlPointLabel(i) for i in range(points.GetNumberOfControlPoints())]
    assert labels == ["C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2"]
    descriptions = [points.GetNthControlPointDescription(i) for i in range(len(labels))]
    assert descriptions[0] == descriptions[-1] == landmarks.PLACED
    assert set(descriptions[1:-1]) == {landmarks.FILLED}
    ras = np.array([points.GetNthControlPointPosition(i) for i in range(len(labels))])
    np.testing.assert_allclose(ras[0] * [-1, -1, 1], marked[2], atol=1e-3)  # placed points stay put (LPS <-> RAS)
    np.testing.assert_allclose(ras[-1] * [-1, -1, 1], marked[9], atol=1e-3)
    assert np.all(np.diff(ras[:, 2]) < 0)  # superior to inferior
    assert levels.unknown_segments == ()


def test_a_single_landmark_is_refused_with_a_reason(scene, errsm):
    subject = errsm["errsm_11"]
    volume = mrml.load_volume(scene, subject["image"], "t2")
    cord = mrml.load_volume(scene, subject["cord"], "cord", labelmap=True)
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "levels")
    points.AddControlPoint(vtk.vtkVector3d(0, 0, 0), "C2")
    with pytest.raises(InputError, match=r"^levels: no segment .* can be placed from these bodies \(found C2\)"):
        landmarks.complete_landmarks(scene, points, volume, cord)
