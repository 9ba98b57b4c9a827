"""Pseudo-anomaly benchmark on real spinal cords: U2AD against the comparison methods, and the
ablation (METHOD.md §7-§10).

A fixed, seeded set of studies: real healthy subjects that the shipped model never saw
(errsm_23, errsm_24, sct_example_data), several sagittal slices each, every slice once healthy
and once with inserted pseudo-lesions (data.pseudo.insert_pseudo_lesions: 1-3 ellipses, sizes and
contrasts drawn between cord and CSF), plus generated phantoms with seeds the shipped model was
not trained on (half with lesions). Patient and segment labels come from the lesion masks and
the vertebral levels (C2/T2 landmarks + PAM50 prior for errsm, C3/T4 for sct_example_data,
discs for phantoms). Every method is scored by `detect_study` and evaluated with the paper's
5-fold protocol (evaluation.protocol); the table is printed and written to OUT/table.md.

    python benchmarks/pseudo_benchmark.py --out /tmp/u2ad_bench            # CPU profile, < 30 min on 2 cores
    python benchmarks/pseudo_benchmark.py --out /tmp/u2ad_bench --profile paper --device cuda

Strategy 3 (the U2AD way) adapts the shipped model transductively on the benchmark slices
themselves, once per masking strategy of the ablation (random / EU / EU+AU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "U2ADCore"))

from u2adcore.config import (  # noqa: E402
    AdaptConfig,
    DAEConfig,
    EvaluationConfig,
    PhantomConfig,
    TrainConfig,
    U2ADConfig,
    to_dict,
)
from u2adcore.evaluation.calibrate import StudyRecord, Truth, score_study  # noqa: E402
from u2adcore.evaluation.protocol import CVResult, cross_validate, markdown_table  # noqa: E402
from u2adcore.io.atomic import write_text  # noqa: E402

# Real subjects scored (never used for the shipped model) and the files that give their levels.
SUBJECTS: dict[str, dict] = {
    "errsm_23": {"dir": "sct_2014_errsm/errsm_23", "image": "t2.nii.gz", "cord": "t2_manual_segmentation.nii.gz",
                 "levels": "t2_landmarks_C2_T2_center.nii.gz"},
    "errsm_24": {"dir": "sct_2014_errsm/errsm_24", "image": "t2.nii.gz", "cord": "t2_manual_segmentation.nii.gz",
                 "levels": "t2_landmarks_C2_T2_center.nii.gz"},
    "sct_example": {"dir": "sct_example_data/t2", "image": "t2.nii.gz", "cord": "t2_seg.nii.gz",
                    "levels": "labels_DERIVED-from-2014-grid.nii.gz"},
}
# Healthy studies the DAE is trained on: the shipped model's real pretraining subjects.
DAE_SUBJECTS = ("errsm_11", "errsm_18", "errsm_21")


@dataclass(frozen=True)
class Profile:
    """Schedules of one run. "cpu" fits 2 CPU cores in under 30 minutes; "paper" is the paper's
    schedule (200 adaptation epochs, stage 2 from 150, EU refresh every 10, K = 10; DAE 200 epochs)."""

    mc_samples: int
    adapt_epochs: int
    stage2_start: int
    refresh_every: int
    adapt_lr_step: int
    adapt_batch: int
    dae_epochs: int
    dae_lr_step: int


PROFILES = {
    "cpu": Profile(mc_samples=4, adapt_epochs=12, stage2_start=8, refresh_every=4, adapt_lr_step=6, adapt_batch=8,
                   dae_epochs=30, dae_lr_step=12),
    "paper": Profile(mc_samples=10, adapt_epochs=200, stage2_start=150, refresh_every=10, adapt_lr_step=50, adapt_batch=8,
                     dae_epochs=200, dae_lr_step=50),
}


@dataclass
class BenchStudy:
    study: object  # io.study.Study
    truth: Truth
    slice_index: int  # canonical left-right index that is scored
    source: str


# -- the study set ---------------------------------------------------------------------------------


def _load_subject(realspine: Path, name: str, spec: dict):
    from u2adcore.io.study import load_study

    d = realspine / spec["dir"]
    return load_study(d / spec["image"], d / spec["cord"], levels=d / spec["levels"], levels_kind="bodies", study_id=name)


def _with_id(study, study_id: str):
    return dataclasses.replace(study, id=study_id)


def _truth(segment_labels: dict[str, int]) -> Truth:
    return Truth(label=True, segments=frozenset(s for s, v in segment_labels.items() if v))


def real_studies(realspine: Path, offsets: tuple[int, ...], rng: np.random.Generator) -> list[BenchStudy]:
    """Each subject x each slice (mid-sagittal + offsets): one healthy and one pseudo-lesion study."""
    import SimpleITK as sitk

    from u2adcore.data.pseudo import insert_pseudo_lesions
    from u2adcore.volume.orientation import to_canonical
    from u2adcore.volume.slices import mid_sagittal_index

    out = []
    for name, spec in SUBJECTS.items():
        base = _load_subject(realspine, name, spec)
        mid = mid_sagittal_index(sitk.GetArrayViewFromImage(to_canonical(base.cord)) > 0)
        for off in offsets:
            i = mid + off
            out.append(BenchStudy(_with_id(base, f"{name}_s{i}_healthy"), Truth(False), i, name))
            pseudo = insert_pseudo_lesions(base, rng, n_lesions=(1, 3), slices=[i])
            out.append(BenchStudy(_with_id(pseudo.study, f"{name}_s{i}_lesion"), _truth(pseudo.segment_labels), i, name))
    return out


def phantom_studies(n: int, seed: int) -> list[BenchStudy]:
    """`n` generated studies, every second one with 1-2 lesions; seeds from `seed` on."""
    import SimpleITK as sitk

    from u2adcore.data.phantom import make_phantom
    from u2adcore.volume.orientation import to_canonical
    from u2adcore.volume.slices import mid_sagittal_index

    out = []
    for k in range(n):
        n_lesions = 0 if k % 2 == 0 else 1 + (k // 2) % 2
        ph = make_phantom(seed + k, n_lesions=n_lesions, cfg=PhantomConfig())
        study = ph.to_study(f"phantom_{seed + k}")
        mid = mid_sagittal_index(sitk.GetArrayViewFromImage(to_canonical(study.cord)) > 0)
        truth = Truth(label=bool(ph.patient_label), segments=frozenset(ph.lesion_segments))
        out.append(BenchStudy(study, truth, mid, "phantom"))
    return out


# -- running methods -------------------------------------------------------------------------------


def base_config(device: str, mc_samples: int) -> U2ADConfig:
    cfg = U2ADConfig()
    cfg.inference.device, cfg.inference.mc_samples = device, mc_samples
    return cfg


def score_all(studies: list[BenchStudy], method, cfg: U2ADConfig) -> list[StudyRecord]:
    """Each study scored on its own slice, through detect_study (as `u2ad detect --slices i`)."""
    from u2adcore.detect import detection_config

    cfg = detection_config(cfg, method)
    records = []
    for b in studies:
        study_cfg = dataclasses.replace(cfg, preprocess=dataclasses.replace(cfg.preprocess, slices=[b.slice_index]))
        records.append(score_study(b.study, b.truth, method, study_cfg))
    return records


def benchmark_slices(studies: list[BenchStudy], cfg: U2ADConfig):
    """The scored slice of every study as one SliceArrays (the transductive adaptation set)."""
    from u2adcore.training.slices_data import concat, from_prepared
    from u2adcore.volume.preprocess import prepare_slices

    pre = cfg.preprocess
    return concat(from_prepared(prepare_slices(b.study, dataclasses.replace(pre, slices=[b.slice_index]))) for b in studies)


def healthy_training_slices(realspine: Path, n_slices: int, cfg: U2ADConfig):
    """The DAE's training set: the shipped model's real pretraining subjects, `n_slices` each."""
    from u2adcore.io.study import load_study
    from u2adcore.training.slices_data import concat, from_prepared
    from u2adcore.volume.preprocess import prepare_slices

    pre = dataclasses.replace(cfg.preprocess, n_slices=n_slices)
    parts = []
    for name in DAE_SUBJECTS:
        d = realspine / "sct_2014_errsm" / name
        study = load_study(d / "t2.nii.gz", d / "t2_manual_segmentation.nii.gz", study_id=name)
        parts.append(from_prepared(prepare_slices(study, pre)))
    return concat(parts)


def adapted_model(model: Path, data, strategy: str, profile: Profile, device: str, out: Path, log: Callable) -> Path:
    """Strategy 3: the shipped model adapted on the benchmark slices with `strategy` masking."""
    from u2adcore.training.checkpoint import load_checkpoint
    from u2adcore.uncertainty.adapt import adapt

    path = out / f"adapted_{strategy.replace('+', '')}.pt"
    if path.exists():
        log(f"reusing {path}")
        return path
    cfg = AdaptConfig(strategy=strategy, epochs=profile.adapt_epochs, stage2_start=profile.stage2_start,
                      refresh_every=profile.refresh_every, mc_samples=profile.mc_samples,
                      lr_step_epochs=profile.adapt_lr_step, batch_size=profile.adapt_batch, device=device)
    adapt(load_checkpoint(model, "cpu"), data, cfg, out_path=path)
    return path


def dae_model(realspine: Path, profile: Profile, device: str, out: Path, log: Callable) -> Path:
    from u2adcore.methods.dae import save_dae, train_dae

    path = out / "dae.pt"
    if path.exists():
        log(f"reusing {path}")
        return path
    cfg = base_config(device, 1)
    data = healthy_training_slices(realspine, cfg.train.n_slices, cfg)
    train = dataclasses.replace(TrainConfig(), epochs=profile.dae_epochs, lr_step_epochs=profile.dae_lr_step, device=device)
    model, _ = train_dae(data, train, DAEConfig())
    save_dae(path, model, train, cfg.preprocess, data.summary())
    return path


def run(args: argparse.Namespace) -> dict[str, CVResult]:
    from u2adcore.methods.dae import DAEMethod
    from u2adcore.methods.dbscan import DbscanMethod
    from u2adcore.methods.slic import SlicMethod
    from u2adcore.methods.u2ad import U2ADMethod
    from u2adcore.methods.zscore import ZScoreMethod
    from u2adcore.resources import default_model_path

    profile = PROFILES[args.profile]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - start:7.1f} s] {msg}", flush=True)

    rng = np.random.default_rng(args.seed)
    studies = real_studies(args.realspine, tuple(args.offsets), rng) + phantom_studies(args.phantoms, args.phantom_seed)
    n_pos = sum(b.truth.label for b in studies)
    log(f"{len(studies)} studies ({n_pos} with lesions): " + ", ".join(sorted({b.source for b in studies})))
    model = args.model or default_model_path()
    mc = base_config(args.device, profile.mc_samples)
    single = base_config(args.device, 1)
    runs: dict[str, Callable[[], list[StudyRecord]]] = {
        "Z-scoring": lambda: score_all(studies, ZScoreMethod(config=mc), mc),
        "SLIC": lambda: score_all(studies, SlicMethod(config=mc), mc),
        "DBSCAN": lambda: score_all(studies, DbscanMethod(config=mc), mc),
        "DAE (strategy 1)": lambda: score_all(studies, DAEMethod(config=mc, checkpoint=dae_model(args.realspine, profile, args.device, out, log)), mc),
        "U2AD strategy 1 (pretrained only, MC)": lambda: score_all(studies, U2ADMethod(config=mc, checkpoint=model), mc),
    }
    adapt_set = None

    def adapted(strategy: str) -> Path:
        nonlocal adapt_set
        if adapt_set is None:
            adapt_set = benchmark_slices(studies, mc)
        return adapted_model(model, adapt_set, strategy, profile, args.device, out, log)

    runs.update({
        "U2AD random masking, single pass": lambda: score_all(studies, U2ADMethod(config=single, checkpoint=adapted("random")), single),
        "U2AD random masking, MC": lambda: score_all(studies, U2ADMethod(config=mc, checkpoint=adapted("random")), mc),
        "U2AD EU-guided, MC": lambda: score_all(studies, U2ADMethod(config=mc, checkpoint=adapted("eu")), mc),
        "U2AD EU+AU (strategy 3), MC": lambda: score_all(studies, U2ADMethod(config=mc, checkpoint=adapted("eu+au")), mc),
    })
    selected = [name for name in runs if not args.only or any(key.lower() in name.lower() for key in args.only)]
    results, eval_cfg = {}, EvaluationConfig(seed=args.seed)
    for name in selected:
        t0 = time.monotonic()
        records = runs[name]()
        results[name] = cross_validate(records, eval_cfg)
        summary = results[name].summary()
        log(f"{name}: {time.monotonic() - t0:.0f} s; segment F1 {summary['segment_f1'][0]:.3f}, "
            f"pixel AUPRC {summary['pixel_auprc'][0]:.3f}")
        write_text(out / f"records_{len(results):02d}.json", json.dumps(
            {"method": name, "records": [{"id": r.id, "label": r.label, "segments": sorted(r.segments),
                                          "patient_score": r.patient_score, "segment_scores": r.segment_scores}
                                         for r in records]}, indent=1))
    table = markdown_table(results)
    settings = {"profile": dataclasses.asdict(profile), "evaluation": to_dict(eval_cfg), "seed": args.seed,
                "offsets": list(args.offsets), "phantoms": args.phantoms, "phantom_seed": args.phantom_seed,
                "n_studies": len(studies), "n_positive": n_pos, "model": str(model), "minutes": (time.monotonic() - start) / 60}
    write_text(out / "table.md", table)
    write_text(out / "settings.json", json.dumps(settings, indent=2))
    print(table, flush=True)
    log("done")
    return results


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the adapted checkpoints, the DAE and the table")
    p.add_argument("--realspine", type=Path, default=Path(os.environ.get("U2AD_REALSPINE", REPO.parent / "shared" / "data" / "realspine")))
    p.add_argument("--model", type=Path, default=None, help="pretrained EdgeMAE (default: the shipped model)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0, help="pseudo-lesion draws and fold assignment")
    p.add_argument("--offsets", type=int, nargs="+", default=[-2, -1, 0, 1, 2],
                   help="sagittal slices scored per real subject, relative to the mid-sagittal one")
    p.add_argument("--phantoms", type=int, default=16, help="generated studies (every second one with lesions)")
    p.add_argument("--phantom-seed", type=int, default=5000, help="first phantom seed (the shipped model's are below it)")
    p.add_argument("--only", nargs="+", default=None, help="run only methods whose name contains one of these")
    args = p.parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
