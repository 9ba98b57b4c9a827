"""Draw docs/slicer_workflow.png from a real run of the module's batch script.

    .venv/bin/python U2ADSlicer/Scripts/make_workflow_figure.py --subject errsm_11 [--model MODEL.pt] --out docs/slicer_workflow.png

Runs `Resources/batch_detect.py` on a real study (slicer-core scene, worker process), then draws
what the module shows: the anomaly map overlaid on the mid-sagittal T2 slice with the candidate
outline, the AnoCurve chart with segment borders, and the segment score table, all read back from
the output nodes and files. Without --model it uses the shipped model.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

REALSPINE = HERE.parents[1].parent / "shared" / "data" / "realspine" / "sct_2014_errsm"


def _canonical(path: Path):
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(path)), "PIL"))  # (LR, SI, AP)


def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import slicer
    from matplotlib.colors import LinearSegmentedColormap

    from u2adcore.io.atomic import atomic_path
    from U2ADSlicerLib import mrml

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subject", default="errsm_11")
    p.add_argument("--model", type=Path)
    p.add_argument("--mc", type=int)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    folder = REALSPINE / args.subject
    spec = importlib.util.spec_from_file_location("batch_detect", HERE.parent / "Resources" / "batch_detect.py")
    batch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(batch)
    scene = slicer.vtkMRMLScene()
    with tempfile.TemporaryDirectory() as tmp:
        run_args = ["--image", str(folder / "t2.nii.gz"), "--cord", str(folder / "t2_manual_segmentation.nii.gz"),
                    "--levels", str(folder / "t2_landmarks_C2_T2_center.nii.gz"), "--levels-kind", "bodies",
                    "--out", tmp, "--device", "cpu"]
        run_args += ["--model", str(args.model)] if args.model else []
        run_args += ["--mc", str(args.mc)] if args.mc else []
        if batch.main(run_args, scene) != 0:
            return 1
        t2 = _canonical(folder / "t2.nii.gz")
        amap = _canonical(Path(tmp) / "slicer" / "anomaly_map.nii.gz")
        candidates = _canonical(Path(tmp) / "T2" / "candidates.nii.gz")

    table = scene.GetFirstNode("T2 U2AD segment scores", "vtkMRMLTableNode")
    chart = scene.GetFirstNode("T2 U2AD AnoCurve", "vtkMRMLPlotChartNode")
    amap_node = scene.GetFirstNode("T2 U2AD anomaly map", "vtkMRMLScalarVolumeNode")
    display_max = amap_node.GetDisplayNode().GetWindowLevelMax()

    i = int(np.argmax(amap.reshape(len(amap), -1).sum(axis=1)))  # the analysed sagittal slice
    cord_rows, cord_cols = np.nonzero(amap[i] > 0)
    margin = 45  # voxels of anatomy shown around the analysed cord
    colours = mrml.anomaly_colour_node(scene)
    rgb = [colours.GetLookupTable().GetTableValue(k)[:3] for k in range(colours.GetNumberOfColors())]
    cmap = LinearSegmentedColormap.from_list("u2ad", rgb)

    fig = plt.figure(figsize=(13, 5.2), dpi=110)
    ax = fig.add_axes([0.01, 0.06, 0.27, 0.86])
    ax.imshow(t2[i], cmap="gray", vmax=np.percentile(t2[i], 99.5))
    shown = np.ma.masked_less_equal(amap[i], 0)
    im = ax.imshow(shown, cmap=cmap, vmin=0, vmax=display_max, alpha=mrml.DisplaySettings().overlay_opacity + 0.3)
    if candidates[i].any():
        ax.contour(candidates[i] > 0, levels=[0.5], colors=["#ffd400"], linewidths=1.2)
    ax.set_xlim(max(cord_cols.min() - margin, 0), min(cord_cols.max() + margin, amap.shape[2] - 1))
    ax.set_ylim(min(cord_rows.max() + margin // 3, amap.shape[1] - 1), max(cord_rows.min() - margin // 3, 0))
    ax.set_title("Anomaly map over T2 (fixed scale)\nyellow outline: segment 'T2 hyperintensity'", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.01, label=f"anomaly (0 – {display_max:g})")

    ax = fig.add_axes([0.42, 0.14, 0.27, 0.74])
    for k in range(chart.GetNumberOfPlotSeriesNodes()):
        series = chart.GetNthPlotSeriesNode(k)
        x = slicer.util.arrayFromTableColumn(series.GetTableNode(), series.GetXColumnName())
        y = slicer.util.arrayFromTableColumn(series.GetTableNode(), series.GetYColumnName())
        if k == 0:
            ax.plot(x, y, color=series.GetColor(), lw=1.6, label="AnoCurve")
        else:
            ax.plot(x, y, color=series.GetColor(), lw=0.8, ls="--")
            ax.text(x[0], y[1], series.GetName().split()[0], fontsize=7, ha="center", va="bottom", color="0.35")
    ax.set_xlabel(chart.GetXAxisTitle(), fontsize=9)
    ax.set_ylabel(chart.GetYAxisTitle(), fontsize=9)
    ax.set_title("Plot chart: AnoCurve with segment borders", fontsize=9)
    ax.tick_params(labelsize=8)

    ax = fig.add_axes([0.72, 0.14, 0.27, 0.74])
    ax.axis("off")
    cells = [[table.GetCellText(r, 0), table.GetCellText(r, 1)[:6], table.GetCellText(r, 3)] for r in range(table.GetNumberOfRows())]
    tab = ax.table(cellText=cells, colLabels=["Segment", "Score", "Verdict"], loc="upper center", cellLoc="left")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8.5)
    tab.scale(1.0, 1.5)
    score = float(table.GetAttribute("U2AD.PatientScore"))
    ax.set_title(f"Table: segment scores\npatient score {score:.3f}: {table.GetAttribute('U2AD.PatientVerdict')}", fontsize=9)

    with atomic_path(args.out) as tmp_png:
        fig.savefig(tmp_png, format="png")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
