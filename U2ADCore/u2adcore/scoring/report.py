"""report.png: what a radiologist glances at to check a detection (METHOD.md §6).

Three panels share one vertical axis (mm from the top of the analysed cord), so a bump in the
AnoCurve lines up with the slice: the input slice, the same slice with the anomaly overlay and
candidate outlines, and the AnoCurve with segment borders, names, scores and thresholds. The
overlay uses a FIXED colour scale (ScoringConfig.display_max): a per-image scale would make
every study, healthy or not, look equally alarming.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from scipy import ndimage

from ..io.atomic import atomic_path

if TYPE_CHECKING:
    from ..detect import DetectionResult

CANDIDATE_COLOURS = ("#00e5ff", "#76ff03", "#ff4081")  # labels 1, 2, 3
MARGIN_MM = 15.0  # shown above and below the cord, and on each side of it
PANEL_HEIGHT_IN, DPI = 6.0, 110
_TOP, _BOTTOM = 0.88, 0.2  # figure fractions of the panels; below them: colour bar and legend


def overlay_rgba(values: np.ndarray, display_max: float) -> np.ndarray:
    """RGBA overlay of anomaly values on the fixed scale [0, display_max] (inferno colours).

    Zero is transparent; opacity grows with the value so the cord stays readable under low,
    uninteresting error; values at or above display_max saturate rather than rescale.
    """
    from matplotlib import colormaps

    frac = np.clip(np.asarray(values, dtype=np.float64) / display_max, 0.0, 1.0)
    rgba = colormaps["inferno"](frac)
    rgba[..., 3] = np.where(values > 0, np.clip(0.35 + frac, 0.0, 1.0), 0.0)
    return rgba


def _view_box(roi: np.ndarray, spacing_mm: float) -> tuple[int, int, int, int]:
    """Rows and columns (r0, r1, c0, c1) of the grid worth showing: the cord plus a margin, at a
    sagittal aspect (at least as wide as a third of its height) so the neck's anatomy stays visible."""
    rows = np.flatnonzero(roi.any(axis=1))
    cols = np.flatnonzero(roi.any(axis=0))
    m = int(round(MARGIN_MM / spacing_mm))
    r0, r1 = max(rows[0] - m, 0), min(rows[-1] + m + 1, roi.shape[0])
    half = max((r1 - r0) // 6, (cols[-1] - cols[0]) // 2 + m)
    centre = (cols[0] + cols[-1]) // 2
    return r0, r1, max(centre - half, 0), min(centre + half + 1, roi.shape[1])


def _map_name(scoring, th) -> str:
    if scoring.residual == "paper":
        return "anomaly |x − μ|"
    scale = scoring.residual_scale
    if scale == "healthy" and (th is None or th.residual_spread is None):
        scale = "none"  # an uncalibrated model: unscaled
    unit = {"healthy": "healthy spreads", "slice_mad": "slice MADs", "none": "intensity"}[scale]
    return f"hyperintense residual ({unit})"


def _verdict(positive, threshold) -> str:
    if positive is None:
        return "no calibrated threshold"
    return f"{'POSITIVE' if positive else 'negative'} (threshold {threshold:.3g})"


def write_report(path: Union[str, Path], result: "DetectionResult") -> None:
    """Render `result` (its scored slice) to a PNG at `path`, written atomically."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state (Slicer, threads)

    sc = result.scored
    spacing = sc.curve.spacing_mm
    display_max = result.config.scoring.display_max
    th = result.thresholds
    top_row = sc.curve.rows[0]
    r0, r1, c0, c1 = _view_box(sc.roi, spacing)
    extent = (c0 * spacing, c1 * spacing, (r1 - 0.5 - top_row) * spacing, (r0 - 0.5 - top_row) * spacing)

    # Panels share the vertical axis and height; their widths make the pixels square.
    aspect = (c1 - c0) / (r1 - r0)
    fig = Figure(figsize=(2 * PANEL_HEIGHT_IN * aspect + 6.5, PANEL_HEIGHT_IN / (_TOP - _BOTTOM)))
    axes = fig.subplots(1, 3, sharey=True, gridspec_kw={"width_ratios": [PANEL_HEIGHT_IN * aspect] * 2 + [4.2]})
    ax_img, ax_map, ax_curve = axes
    view = sc.image[r0:r1, c0:c1]
    for ax in (ax_img, ax_map):
        ax.imshow(view, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest", aspect="auto")
        ax.set_xlabel("anterior → posterior (mm)")
    ax_img.set_title("input (sagittal)")
    ax_img.set_ylabel("mm from the top of the analysed cord")
    _mark_segments(ax_img, sc.segments, top_row, spacing, c0 * spacing)

    ax_map.imshow(overlay_rgba(sc.amap[r0:r1, c0:c1], display_max), extent=extent, interpolation="nearest", aspect="auto")
    ax_map.contour(sc.roi[r0:r1, c0:c1], levels=[0.5], colors="white", linewidths=0.5, alpha=0.6, extent=extent, origin="upper")
    labels = sc.labels[r0:r1, c0:c1]
    for lab, colour in enumerate(CANDIDATE_COLOURS, start=1):
        inside = labels == lab
        if inside.any():
            # Outline a lightly smoothed mask: the component's exact pixel edge is speckle, not shape.
            ax_map.contour(ndimage.gaussian_filter(inside.astype(float), 1.0), levels=[0.5], colors=[colour],
                           linewidths=1.3, extent=extent, origin="upper")
            pr, pc = np.unravel_index(np.argmax(np.where(inside, sc.amap[r0:r1, c0:c1], -1)), inside.shape)
            ax_map.annotate(str(lab), ((c0 + pc + 6) * spacing, (r0 + pr - top_row) * spacing), color=colour,
                            fontsize=10, weight="bold", va="center")
    pixel = None if th is None else th.pixel
    if pixel is not None and (sc.amap[r0:r1, c0:c1] > pixel).any():
        ax_map.contour(sc.amap[r0:r1, c0:c1], levels=[pixel], colors="white", linewidths=0.8, linestyles="dashed",
                       extent=extent, origin="upper")
    ax_map.set_title(f"anomaly and candidates ({int(sc.labels.max())})")
    scale = ScalarMappable(norm=Normalize(0, display_max), cmap="inferno")
    bar = fig.colorbar(scale, cax=ax_map.inset_axes([0.0, -0.15, 1.0, 0.025]), orientation="horizontal", extend="max")
    if pixel is not None:
        bar.ax.axvline(pixel, color="white", ls="--", lw=1.2)
    bar.set_label(f"{_map_name(result.config.scoring, th)} (fixed scale 0 – {display_max:g}"
                  + ("" if pixel is None else f"; dashed: pixel threshold {pixel:.3g}") + ")", fontsize=9)

    _plot_curve(ax_curve, result, top_row, spacing)

    patient = f"patient score {sc.patient_score:.4g}: {_verdict(sc.patient_positive, None if th is None else th.patient)}"
    fig.suptitle(f"{result.study_id} — {patient}", fontsize=13, weight="bold", color="#b00020" if sc.patient_positive else "black")
    method = result.method
    detail = f"method {method.get('method', '?')}"
    if "preset" in method:
        detail += f", model {method['preset']} ({str(method.get('sha256', ''))[:12]})"
    detail += f"  ·  sagittal slice {result.slice_index}  ·  levels: {result.levels_source or 'none (segments unknown)'}"
    fig.text(0.5, 0.93, detail, ha="center", fontsize=9, color="#444444")
    fig.subplots_adjust(left=0.08, right=0.98, top=_TOP, bottom=_BOTTOM, wspace=0.08)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def _mark_segments(ax, segments, top_row: float, spacing: float, x_mm: float) -> None:
    """Segment borders and names on the image, so a curve peak can be read against the anatomy."""
    for seg in segments:
        if seg.known:
            for row in (seg.start_row, seg.end_row):
                ax.axhline((row - top_row) * spacing, color="#ffd54f", lw=0.6, alpha=0.8)
            ax.text(x_mm + 1.5, ((seg.start_row + seg.end_row) / 2 - top_row) * spacing, seg.name, color="#ffd54f",
                    fontsize=8, va="center", bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "edgecolor": "none"})


def _plot_curve(ax, result: "DetectionResult", top_row: float, spacing: float) -> None:
    """AnoCurve drawn downward along the cord, segment bands with names and scores, thresholds."""
    sc = result.scored
    th = result.thresholds
    y = (sc.curve.rows - top_row) * spacing
    ax.plot(sc.curve.values, y, color="#d32f2f", lw=1.6, label="AnoCurve")
    # the sample the patient score comes from (over C2-C3 ... C7-T1 when levels are known)
    at_score = np.flatnonzero(np.isclose(sc.curve.values, sc.patient_score, rtol=1e-9, atol=0))
    peak = int(at_score[0]) if at_score.size else int(np.argmax(sc.curve.values))
    ax.plot(sc.curve.values[peak], y[peak], "o", color="#d32f2f", ms=6, label=f"patient score {sc.patient_score:.3g}")
    shown = [] if th is None else [t for t in (th.patient, th.segment) if t is not None]
    xmax = max([sc.curve.values.max(), *shown]) * 1.35
    for i, seg in enumerate(s for s in sc.segments if s.known):
        lo, hi = ((seg.start_row - top_row) * spacing, (seg.end_row - top_row) * spacing)
        ax.axhspan(lo, hi, color="#e3f2fd" if i % 2 == 0 else "#fff8e1", zorder=0)
        ax.axhline(lo, color="#90a4ae", lw=0.6)
        ax.axhline(hi, color="#90a4ae", lw=0.6)
        score = "—" if seg.score is None else f"{seg.score:.3g}"
        mark = " ▲" if seg.positive else ""
        prior = "*" if result.is_inferred(seg) else ""
        ax.text(xmax * 0.98, (lo + hi) / 2, f"{seg.name}{prior}  {score}{mark}", ha="right", va="center", fontsize=9,
                weight="bold" if seg.positive else "normal", color="#b00020" if seg.positive else "#263238")
    if th is not None and th.segment is not None:
        ax.axvline(th.segment, color="#6a1b9a", ls="--", lw=1, label=f"segment threshold {th.segment:.3g}")
    if th is not None and th.patient is not None:
        ax.axvline(th.patient, color="#ef6c00", ls=":", lw=1.2, label=f"patient threshold {th.patient:.3g}")
    ax.set_title("AnoCurve (mean anomaly across the cord)")
    notes = []
    if any(result.is_inferred(s) for s in sc.segments):
        notes.append("* border from the anatomical prior, not marked")
    unknown = [s.name for s in sc.segments if not s.known]
    if unknown:
        notes.append("unknown levels: " + ", ".join(unknown))
    if notes:
        ax.text(0.02, 0.01, "\n".join(notes), transform=ax.transAxes, fontsize=8, color="#616161", va="bottom")
    ax.set_xlim(0, xmax)
    ax.set_xlabel("AnoCurve value")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8, frameon=False)
    ax.grid(axis="x", color="#eeeeee")
