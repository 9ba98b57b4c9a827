"""report.png: a fixed colour scale, and a figure for every kind of result (with or without levels
and thresholds)."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from u2adcore.config import SEGMENTS, Thresholds, U2ADConfig
from u2adcore.detect import DetectionResult
from u2adcore.scoring.report import overlay_rgba, write_report
from u2adcore.scoring.segments import score_slice


def test_overlay_colours_depend_on_the_value_only_never_on_the_rest_of_the_image():
    a = overlay_rgba(np.array([[0.1, 0.2]]), display_max=0.5)
    b = overlay_rgba(np.array([[0.1, 0.45]]), display_max=0.5)
    np.testing.assert_array_equal(a[0, 0], b[0, 0])  # same value, same colour, whatever the image's maximum
    assert not np.allclose(a[0, 1], b[0, 1])
    sat = overlay_rgba(np.array([[0.5, 2.0, 0.0]]), display_max=0.5)
    np.testing.assert_array_equal(sat[0, 0], sat[0, 1])  # above the scale saturates, never rescales
    assert sat[0, 2, 3] == 0.0 and sat[0, 0, 3] == 1.0  # zero is transparent


def _result(with_levels: bool, thresholds) -> DetectionResult:
    rng = np.random.default_rng(0)
    rr, cc = np.mgrid[:256, :256]
    centre = 128 + 10 * np.sin(rr / 60)
    roi = (np.abs(cc - centre) <= 4) & (rr > 30) & (rr < 230)
    image = np.clip(0.3 + 0.1 * rng.standard_normal((256, 256)), 0, 1).astype(np.float32)
    image[roi] = 0.45
    error = np.where(roi, np.abs(0.03 * rng.standard_normal((256, 256))), 0).astype(np.float32)
    error[roi & (np.abs(rr - 120) < 6)] += 0.35
    spans = {s: (40.0 + 30 * i, 70.0 + 30 * i) for i, s in enumerate(SEGMENTS[:5])} if with_levels else {}
    cfg = U2ADConfig()
    scored = score_slice(image, error, roi, spans, cfg.scoring, spacing_mm=1.0, thresholds=thresholds)
    return DetectionResult(
        study_id="hand-made", method={"method": "u2ad", "preset": "tiny", "sha256": "0" * 64}, volumes={},
        scored=scored, slice_index=3, slice_indices=[3], thresholds=thresholds, config=cfg,
        inputs={}, levels_source="discs" if with_levels else None, inferred_levels=(),
    )


@pytest.mark.parametrize("with_levels,thresholds", [(True, Thresholds(patient=0.05, segment=0.06)), (False, None)])
def test_report_png_is_written_whole(tmp_path, with_levels, thresholds):
    path = tmp_path / "report.png"
    write_report(path, _result(with_levels, thresholds))
    img = mpimg.imread(path)
    assert img.shape[0] > 600 and img.shape[1] > 900 and img.std() > 0.05
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]  # no temporary file left


def test_a_positive_study_gets_a_red_title(tmp_path):
    """The verdict must be visible at a glance: the title turns red only when positive."""
    red_rows = []
    for name, th in (("pos", Thresholds(patient=0.05)), ("neg", Thresholds(patient=10.0))):
        write_report(tmp_path / f"{name}.png", _result(True, th))
        top = mpimg.imread(tmp_path / f"{name}.png")[:40, :, :3]
        red_rows.append(int(((top[..., 0] > 0.5) & (top[..., 1] < 0.2) & (top[..., 2] < 0.3)).sum()))
    assert red_rows[0] > 100 and red_rows[1] == 0


def test_the_report_process_draws_the_same_png_as_this_process(tmp_path):
    from u2adcore.scoring.report_process import ReportProcess

    result = _result(True, Thresholds(patient=0.05, segment=0.06))
    write_report(tmp_path / "here.png", result)
    with ReportProcess() as reports:
        reports.submit(tmp_path / "there.png", result)
        reports.wait()
        assert reports.fallback_reason is None  # drawn by the child, not by the fallback
        reports.submit(tmp_path / "again.png", result)  # the child serves one study after another
        reports.wait()
    assert (tmp_path / "there.png").read_bytes() == (tmp_path / "here.png").read_bytes()
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "here.png").read_bytes()


def test_a_dead_report_process_costs_nothing_but_time(tmp_path):
    """If the child is gone, the report is drawn here: the outputs never depend on the child."""
    from u2adcore.scoring.report_process import ReportProcess

    result = _result(False, None)
    reports = ReportProcess()
    reports._proc.kill()
    reports._proc.join()
    reports.submit(tmp_path / "report.png", result)
    reports.wait()
    assert reports.fallback_reason is not None
    assert mpimg.imread(tmp_path / "report.png").shape[1] > 900
    reports.submit(tmp_path / "next.png", result)  # the next study of a batch: drawn here too, nothing sent
    reports.wait()
    reports.close()
    assert reports.fallback_reason is not None and (tmp_path / "next.png").exists()


def test_a_report_that_cannot_be_drawn_is_an_error_here_too(tmp_path):
    from u2adcore.scoring.report_process import ReportProcess

    import dataclasses

    broken = dataclasses.replace(_result(False, None), scored=None)
    with ReportProcess() as reports:
        reports.submit(tmp_path / "report.png", broken)
        with pytest.raises(AttributeError):
            reports.wait()
        assert "AttributeError" in reports.fallback_reason  # the child's traceback, kept for the record
        # the child answered and is idle: the next study of a batch is drawn there again, and no
        # stale answer or second copy of the failed job is left behind
        reports.submit(tmp_path / "next.png", _result(False, None))
        reports.wait()
        assert reports.fallback_reason is None
    assert not (tmp_path / "report.png").exists() and (tmp_path / "next.png").exists()


def test_no_report_process_once_torch_is_loaded():
    """A process that already holds torch (a test run, Slicer's worker) has no import left to
    overlap, and forking a multi-threaded interpreter is what we avoid."""
    import sys

    import torch  # noqa: F401

    from u2adcore.scoring.report_process import report_process_if_useful

    assert "torch" in sys.modules
    with report_process_if_useful() as reports:
        assert reports is None
