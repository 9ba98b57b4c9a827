"""How long does detection of one study take, and how much faster is it than the research code's way?

Both paths run the same `detect_study` (preprocessing, inference, scoring) on the same study with
the same weights, K = 10; they differ only in how Monte-Carlo inference is done:
- ours: the model loaded once, the balanced schedule, all passes of all slices stacked into
  batches of InferenceConfig.batch_size, fused attention (SDPA), tokens restricted to the
  model's context band;
- research: the model reloaded for every slice, the independent schedule (≈ 20 passes), one
  pass of one image per forward call, attention as softmax(QK^T)V written out, every one of the
  1024 patches a token. The accumulation stays ours (vectorised); the research code's per-patch
  Python loop would only widen the gap, so the ratio printed is conservative.

In-process times are wall-clock after start-up (imports, first model load and one warm-up
detection are excluded); peak memory is the process's maximum resident set after the timed runs
of our path. "writing" is `write_detection` of one result; "process" is what a user waits for: a
whole `u2ad detect` of the real study in a fresh interpreter, start-up and model load included.

    .venv/bin/python benchmarks/bench_detect.py [--model MODEL.pt] [--repeats 3] [--slices 1] [--threads N]
"""
from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch


def manual_attention(self, x: torch.Tensor, attn_mask) -> torch.Tensor:
    """The research code's attention: softmax(QK^T / sqrt(d)) V, materialising the T x T matrix."""
    b, t, d = x.shape
    q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if attn_mask is not None:
        attn = attn.masked_fill(~attn_mask, float("-inf"))
    y = attn.softmax(dim=-1) @ v
    return self.proj(y.transpose(1, 2).reshape(b, t, d))


class ResearchStyleU2AD:
    """U2AD inference the way the research code runs it (see the module docstring)."""

    name = "u2ad-research-style"
    thresholds = None

    def __init__(self, checkpoint: Path, K: int):
        self.checkpoint, self.K = checkpoint, K

    def maps(self, slices):
        from u2adcore.methods.base import MethodMaps
        from u2adcore.model.edgemae import Attention, EdgeMAE
        from u2adcore.training.checkpoint import load_checkpoint
        from u2adcore.uncertainty.montecarlo import mc_inference

        out = []
        for s in slices:
            loaded = load_checkpoint(self.checkpoint)  # reloaded per slice
            model = EdgeMAE(dataclasses.replace(loaded.model.cfg, context_band=None)).eval()  # all 1024 tokens
            model.load_state_dict(loaded.model.state_dict())
            with mock.patch.object(Attention, "forward", manual_attention):
                mc = mc_inference(model, s.image[None, None], s.roi[None, None], K=self.K, schedule="independent",
                                  seed=0, batch_size=1)
            out.append(MethodMaps(error=mc.au[0], eu=mc.eu[0], recon=mc.mu[0]))
        return out

    def describe(self) -> dict:
        return {"method": self.name}


def study_for_benchmark():
    """A real healthy study when ../shared/data/realspine is there, else a generated phantom."""
    from u2adcore.io.study import load_study

    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "realspine" / "sct_2014_errsm" / "errsm_23"
    if (real / "t2.nii.gz").exists():
        return load_study(real / "t2.nii.gz", real / "t2_manual_segmentation.nii.gz", study_id="errsm_23"), "errsm_23 (real)"
    from u2adcore.data.phantom import make_phantom
    from u2adcore.io.study import study_from_images

    ph = make_phantom(0)
    return study_from_images(ph.image, ph.cord, study_id="phantom_0"), "phantom seed 0"


def model_for_benchmark(path: Path | None, tmp: Path) -> tuple[Path, str]:
    """The given checkpoint, else the shipped model, else a fresh default-preset model."""
    from u2adcore.resources import default_model_path

    for candidate in (path, default_model_path()):
        if candidate is not None and candidate.is_file():
            return candidate, str(candidate)
    from u2adcore.config import U2ADConfig
    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = U2ADConfig()
    fresh = tmp / "fresh.pt"
    save_checkpoint(fresh, EdgeMAE(cfg.model), cfg, training_data={})
    return fresh, "a fresh default-preset model (no shipped model found)"


def whole_process_seconds(study_note: str, checkpoint: Path, args, tmp: Path) -> list[float] | None:
    """Wall-clock of complete `u2ad detect` processes (interpreter start-up, imports, model load,
    detection, writing the five NIfTI files, curve, report.png and result.json), as a user waits
    for them. Needs the real study (a phantom exists only in memory here)."""
    import os
    import subprocess

    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "realspine" / "sct_2014_errsm" / "errsm_23"
    if not study_note.startswith("errsm_23"):
        return None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "U2ADCore"), os.environ.get("PYTHONPATH", "")])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    times = []
    for i in range(args.process_repeats):
        cmd = [sys.executable, "-m", "u2adcore", "--progress", "none", "detect", str(real / "t2.nii.gz"), "--cord",
               str(real / "t2_manual_segmentation.nii.gz"), "--model", str(checkpoint), "--mc", str(args.K),
               "--n-slices", str(args.slices), "--out", str(tmp / f"process_{i}")]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=3, help="timed detections of our path (median reported)")
    parser.add_argument("--slices", type=int, default=1, help="sagittal slices analysed (default 1, the paper's)")
    parser.add_argument("--K", type=int, default=10, help="Monte-Carlo reconstructions per patch (default 10)")
    parser.add_argument("--process-repeats", type=int, default=3, help="whole `u2ad detect` processes timed (median reported)")
    parser.add_argument("--threads", type=int, help="torch threads for both paths (default: torch's, one per core)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from u2adcore.config import U2ADConfig
    from u2adcore.detect import detect_study
    from u2adcore.methods.u2ad import U2ADMethod

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, model_note = model_for_benchmark(args.model, Path(tmp))
        study, study_note = study_for_benchmark()
        base = U2ADConfig()
        cfg = dataclasses.replace(
            base,
            preprocess=dataclasses.replace(base.preprocess, n_slices=args.slices),
            inference=dataclasses.replace(base.inference, mc_samples=args.K, device="cpu"),
        )
        ours = U2ADMethod(cfg, checkpoint)
        cfg = dataclasses.replace(cfg, model=ours.loaded.config.model)
        detect_study(study, ours, cfg)  # warm-up
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = detect_study(study, ours, cfg)
            runs.append((time.perf_counter() - start, result.timings))
        rss = peak_rss_gb()
        from u2adcore.detect import write_detection

        writes = []
        for i in range(args.repeats):
            write_detection(result, Path(tmp) / f"write_{i}")
            writes.append(result.timings["write"])


        total = statistics.median(t for t, _ in runs)
        stages = {k: statistics.median(r[k] for _, r in runs) for k in runs[0][1]}

        start = time.perf_counter()
        research = detect_study(study, ResearchStyleU2AD(checkpoint, args.K), cfg)
        research_total = time.perf_counter() - start
        process = whole_process_seconds(study_note, checkpoint, args, Path(tmp))

    mc = ours.loaded.config.model
    print(f"study: {study_note}; model: {model_note}")
    print(f"model: preset {mc.preset}, context band {mc.context_band}; K = {args.K}; {args.slices} slice(s); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"ours      total {total:6.2f} s  (" + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items())
          + f"; median of {args.repeats})  peak RSS {rss:.2f} GB")
    print(f"writing   {statistics.median(writes):6.2f} s  (5 NIfTI files, curve.csv, report.png, result.json; median of {args.repeats})")
    if process:
        print(f"process   total {statistics.median(process):6.2f} s  (whole `u2ad detect`, start-up to files written; "
              f"median of {len(process)}: " + ", ".join(f"{t:.2f}" for t in process) + ")")
    print(f"research  total {research_total:6.2f} s  (" + ", ".join(f"{k} {v:.2f} s" for k, v in research.timings.items()) + ")")
    print(f"speed-up  total x{research_total / total:.1f}, inference x{research.timings['inference'] / stages['inference']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
