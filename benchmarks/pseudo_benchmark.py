"""Pseudo-anomaly benchmark on real spinal cords: U2AD against the comparison methods, and the
ablation (METHOD.md §7-§10), in the first landing's transductive design (adaptation on the very
slices it scores). Superseded by benchmarks/subject_benchmark.py (subject-disjoint, plain and
confounded; docs/RESULTS.md); kept because its helpers are shared and to reproduce the first
landing's numbers.

A fixed, seeded set of studies. Real healthy subjects the shipped model never saw (errsm_23,
errsm_24, sct_example_data), several sagittal slices each, every slice once healthy and once with
pseudo-lesions (data.pseudo.insert_pseudo_lesions: 1-3 ellipses of random size, signal drawn
between cord and CSF, then faded to a contrast cycling through --contrasts); plus generated
phantoms (every second one with lesions) from seeds the shipped model was not trained on.
Patient labels come from the lesion masks; segment labels are the segments the lesion overlaps
in the scored slice, with the levels detection uses (C2/T2 landmarks + PAM50 prior for errsm,
C3/T4 bodies for sct_example_data, body centres for phantoms). Every method is scored through
`detect_study` and evaluated with the paper's 5-fold protocol (evaluation.protocol).

Rows: Z-scoring, SLIC, DBSCAN (training-free); the DAE trained on the shipped model's real
pretraining subjects (strategy 1); U2AD strategy 1 (shipped model, no adaptation); strategy 3
(shipped model adapted transductively on the benchmark slices) with the ablation of its masking
(random / EU / EU+AU) and of Monte-Carlo inference (single pass vs K passes); with --strategy2
also strategy 2 (the same adaptation from a random initialisation). OUT/table.md and
OUT/results.json are rewritten after every row; checkpoints already in OUT are reused.

    python benchmarks/pseudo_benchmark.py --out /tmp/u2ad_bench                  # CPU profile
    python benchmarks/pseudo_benchmark.py --out /tmp/u2ad_bench --profile paper --device cuda --strategy2
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
# The shipped model's pretraining studies (scripts/build_default_model.sh), on which the DAE is
# trained too: real subjects, and the phantom set (number, seed) of `u2ad phantom --lesions 0`.
DAE_SUBJECTS = ("errsm_11", "errsm_18", "errsm_21")
PRETRAIN_PHANTOMS = (6, 2026)


@dataclass(frozen=True)
class Profile:
    """Schedules of one run. "cpu" fits 2 CPU cores in under 30 minutes: AdaptConfig's CPU
    schedule shortened to 12 epochs (EU+AU stage from 9, EU refreshed every 3 with K = 4), the DAE
    on pretraining's CPU schedule with 5 slices per study; inference at the paper's K = 10 (cheap). "paper" is the
    paper's: 200 adaptation epochs (stage 2 from 150, EU refreshed every 10, K = 10), the DAE 200
    epochs on 30 slices per study, K = 10 at inference."""

    mc_samples: int  # inference
    adapt_schedule: str  # AdaptConfig.schedule
    adapt_overrides: dict  # schedule fields changed from that schedule's defaults
    dae_epochs: int
    dae_lr_step: int
    dae_slices: int  # sagittal slices per healthy study


PROFILES = {
    "cpu": Profile(mc_samples=10, adapt_schedule="cpu",
                   adapt_overrides={"epochs": 12, "stage2_start": 9, "refresh_every": 3, "lr_step_epochs": 4},
                   dae_epochs=30, dae_lr_step=12, dae_slices=5),
    "paper": Profile(mc_samples=10, adapt_schedule="paper", adapt_overrides={},
                     dae_epochs=200, dae_lr_step=50, dae_slices=30),
}


@dataclass
class BenchStudy:
    study: object  # io.study.Study
    truth: Truth
    slice_index: int  # canonical left-right index that is scored
    source: str  # subject name or "phantom"
    kind: str  # "real" | "phantom": positives are compared with the normals of their own kind
    group: str  # breakdown column of a positive study (kind and lesion contrast)


# -- the study set ---------------------------------------------------------------------------------


def _load_subject(realspine: Path, name: str, spec: dict):
    from u2adcore.io.study import load_study

    d = realspine / spec["dir"]
    return load_study(d / spec["image"], d / spec["cord"], levels=d / spec["levels"], levels_kind="bodies", study_id=name)


def slice_truth(study, slice_index: int, cfg: U2ADConfig) -> Truth:
    """Labels read off the scored slice itself, one rule for every study: positive when the slice
    holds lesion pixels; labelled segments = those whose row span (as scoring places it) holds any.

    Segments by overlap, with the borders detection scores with: labelling by the lesion centroid
    alone (data.pseudo's segment_labels) would call a long lesion's second segment normal
    although its AnoCurve peak may lie there.
    """
    from u2adcore.levels.levels import segment_rows
    from u2adcore.volume.orientation import geometry_only, to_canonical
    from u2adcore.volume.preprocess import prepare_slices

    (prepared,) = prepare_slices(study, dataclasses.replace(cfg.preprocess, slices=[slice_index]))
    rows = np.flatnonzero(prepared.lesion.any(axis=1))
    spans = segment_rows(study.levels, prepared, to_canonical(geometry_only(study.image)))
    segments = frozenset(name for name, span in spans.items()
                         if span is not None and np.any((rows >= min(span)) & (rows < max(span))))
    return Truth(label=bool(rows.size), segments=segments)


def faded(healthy, lesioned, contrast: float):
    """`lesioned` with its lesions at `contrast` x their inserted difference from `healthy`
    (1 = as inserted): the same shapes at a fainter signal."""
    import SimpleITK as sitk

    return healthy + sitk.Cast(lesioned - healthy, sitk.sitkFloat32) * float(contrast)


def real_studies(realspine: Path, offsets: tuple[int, ...], contrasts: tuple[float, ...], rng: np.random.Generator) -> list[BenchStudy]:
    """Each subject x each slice (mid-sagittal + offsets): one healthy and one pseudo-lesion study,
    the lesion contrast cycling through `contrasts` from slice to slice."""
    import SimpleITK as sitk

    from u2adcore.data.pseudo import insert_pseudo_lesions
    from u2adcore.volume.orientation import to_canonical
    from u2adcore.volume.slices import mid_sagittal_index

    out = []
    for name, spec in SUBJECTS.items():
        base = _load_subject(realspine, name, spec)
        # an empty lesion mask, so that healthy cords count as negative pixels too
        base = dataclasses.replace(base, lesion=sitk.Cast(base.cord * 0, sitk.sitkUInt8))
        mid = mid_sagittal_index(sitk.GetArrayViewFromImage(to_canonical(base.cord)) > 0)
        for off in offsets:
            i = mid + off
            contrast = contrasts[len(out) // 2 % len(contrasts)]
            out.append(BenchStudy(dataclasses.replace(base, id=f"{name}_s{i}_healthy"), Truth(label=False), i, name, "real", "real"))
            pseudo = insert_pseudo_lesions(base, rng, n_lesions=(1, 3), slices=[i])
            study = dataclasses.replace(pseudo.study, id=f"{name}_s{i}_lesion{contrast:g}",
                                        image=faded(base.image, pseudo.study.image, contrast))
            out.append(BenchStudy(study, slice_truth(study, i, U2ADConfig()), i, name, "real", f"real, contrast {contrast:g}"))
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
        out.append(BenchStudy(study, slice_truth(study, mid, U2ADConfig()), mid, "phantom", "phantom", "phantom"))
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


def healthy_training_slices(realspine: Path, n_slices: int, cfg: U2ADConfig, folder: Path):
    """The DAE's training set: the shipped model's pretraining studies (scripts/build_default_model.sh:
    phantoms of PRETRAIN_PHANTOMS, errsm_11/18/21), `n_slices` each around the mid-sagittal slice."""
    from u2adcore.data.manifest import ManifestEntry, read_manifest
    from u2adcore.data.phantom import write_phantom_set
    from u2adcore.training.slices_data import load_entries

    n, seed = PRETRAIN_PHANTOMS
    manifest = folder / "manifest.csv"
    if not manifest.exists():
        write_phantom_set(folder, n, seed, 0.0, overwrite=True)
    root = realspine / "sct_2014_errsm"
    real = [ManifestEntry(s, root / s / "t2.nii.gz", root / s / "t2_manual_segmentation.nii.gz") for s in DAE_SUBJECTS]
    return load_entries(read_manifest(manifest) + real, dataclasses.replace(cfg.preprocess, n_slices=n_slices))


def adapted_model(start: Path, data, strategy: str, profile: Profile, device: str, path: Path, log: Callable) -> Path:
    """`start` adapted on the benchmark slices (transductively) with `strategy` masking."""
    from u2adcore.training.checkpoint import load_checkpoint
    from u2adcore.training.distributed import resolve_device
    from u2adcore.uncertainty.adapt import adapt, override_schedule

    if path.exists():
        log(f"reusing {path}")
        return path
    cfg = AdaptConfig(strategy=strategy, schedule=profile.adapt_schedule, device=device)
    cfg = override_schedule(cfg, resolve_device(device), **profile.adapt_overrides)
    t0 = time.monotonic()
    adapt(load_checkpoint(start, "cpu"), data, cfg, out_path=path)
    log(f"adapted {start.name} with {strategy} masking in {time.monotonic() - t0:.0f} s -> {path.name}")
    return path


def random_init_model(pretrained: Path, path: Path, seed: int) -> Path:
    """An untrained EdgeMAE of the pretrained model's size: the start of strategy 2 (target only)."""
    import torch

    from u2adcore.model.edgemae import EdgeMAE
    from u2adcore.training.checkpoint import load_checkpoint, save_checkpoint

    if not path.exists():
        config = load_checkpoint(pretrained, "cpu").config
        torch.manual_seed(seed)
        save_checkpoint(path, EdgeMAE(config.model), config, training_data={"n_studies": 0, "studies": []},
                        meta={"task": "random initialisation"})
    return path


def dae_model(realspine: Path, profile: Profile, device: str, path: Path, log: Callable) -> Path:
    """The DAE baseline trained (strategy 1) on the shipped model's pretraining studies."""
    from u2adcore.methods.dae import save_dae, train_dae

    if path.exists():
        log(f"reusing {path}")
        return path
    cfg = base_config(device, 1)
    data = healthy_training_slices(realspine, profile.dae_slices, cfg, path.parent / "pretrain_phantoms")
    train = dataclasses.replace(TrainConfig(), epochs=profile.dae_epochs, lr_step_epochs=profile.dae_lr_step, device=device)
    t0 = time.monotonic()
    model, _ = train_dae(data, train, DAEConfig())
    save_dae(path, model, train, cfg.preprocess, data.summary())
    log(f"trained the DAE on {len(data)} slices in {time.monotonic() - t0:.0f} s")
    return path


def breakdown_table(studies: list[BenchStudy], scores: dict[str, list[StudyRecord]]) -> str:
    """Patient-level AUROC of each group of positive studies against the normal studies of the same
    kind (evaluation.benchmark.breakdown): where each method's detections come from."""
    from u2adcore.evaluation.benchmark import breakdown

    return breakdown(studies, scores)


@dataclass(frozen=True)
class Run:
    """One row of the table: a method built only when the row runs (training happens then)."""

    name: str
    method: Callable[[], object]
    cfg: U2ADConfig


def runs(args: argparse.Namespace, studies: list[BenchStudy], profile: Profile, log: Callable) -> list[Run]:
    from u2adcore.methods.dae import DAEMethod
    from u2adcore.methods.dbscan import DbscanMethod
    from u2adcore.methods.slic import SlicMethod
    from u2adcore.methods.u2ad import U2ADMethod
    from u2adcore.methods.zscore import ZScoreMethod
    from u2adcore.resources import default_model_path

    out, device = args.out, args.device
    pretrained = args.model or default_model_path()
    mc, single = base_config(device, profile.mc_samples), base_config(device, 1)
    adapt_set: list = []

    def adapted(strategy: str, start: Path, tag: str) -> Path:
        if not adapt_set:
            adapt_set.append(benchmark_slices(studies, mc))
        return adapted_model(start, adapt_set[0], strategy, profile, device, out / f"{tag}_{strategy.replace('+', '')}.pt", log)

    def u2ad(cfg: U2ADConfig, checkpoint: Callable[[], Path]) -> Callable[[], object]:
        return lambda: U2ADMethod(config=cfg, checkpoint=checkpoint())

    # Most important rows first: the table is rewritten after every row.
    return [
        Run("Z-scoring", lambda: ZScoreMethod(config=mc), mc),
        Run("SLIC", lambda: SlicMethod(config=mc), mc),
        Run("DBSCAN", lambda: DbscanMethod(config=mc), mc),
        Run("U2AD, strategy 3 (EU+AU, MC)", u2ad(mc, lambda: adapted("eu+au", pretrained, "adapted")), mc),
        Run("ablation: EU-guided, MC", u2ad(mc, lambda: adapted("eu", pretrained, "adapted")), mc),
        Run("ablation: random masking, MC", u2ad(mc, lambda: adapted("random", pretrained, "adapted")), mc),
        Run("ablation: random masking, single pass", u2ad(single, lambda: adapted("random", pretrained, "adapted")), single),
        Run("U2AD, strategy 1 (pretrained only, MC)", u2ad(mc, lambda: pretrained), mc),
        Run("DAE, strategy 1", lambda: DAEMethod(config=mc, checkpoint=dae_model(args.realspine, profile, device, out / "dae.pt", log)), mc),
    ] + ([Run("U2AD, strategy 2 (target only, EU+AU, MC)",
               u2ad(mc, lambda: adapted("eu+au", random_init_model(pretrained, out / "random_init.pt", args.seed), "target_only")), mc)]
         if args.strategy2 else [])


def run(args: argparse.Namespace) -> dict[str, CVResult]:
    from u2adcore.resources import default_model_path
    from u2adcore.training.checkpoint import file_sha256

    profile = PROFILES[args.profile]
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - start:7.1f} s] {msg}", flush=True)

    rng = np.random.default_rng(args.seed)
    studies = real_studies(args.realspine, tuple(args.offsets), tuple(args.contrasts), rng) + phantom_studies(args.phantoms, args.phantom_seed)
    n_pos = sum(b.truth.label for b in studies)
    log(f"{len(studies)} studies ({n_pos} with lesions): " + ", ".join(sorted({b.source for b in studies})))
    selected = [r for r in runs(args, studies, profile, log) if not args.only or any(k.lower() in r.name.lower() for k in args.only)]
    results, eval_cfg, scores, all_records = {}, EvaluationConfig(seed=args.seed), {}, {}
    settings = {"profile": dataclasses.asdict(profile), "evaluation": to_dict(eval_cfg), "seed": args.seed,
                "offsets": list(args.offsets), "contrasts": list(args.contrasts), "phantoms": args.phantoms,
                "phantom_seed": args.phantom_seed, "n_studies": len(studies), "n_positive": n_pos,
                "model": str(args.model or "shipped"), "model_sha256": file_sha256(args.model or default_model_path())}
    for r in selected:
        t0 = time.monotonic()
        records = score_all(studies, r.method(), r.cfg)
        results[r.name] = cross_validate(records, eval_cfg)
        all_records[r.name] = records
        summary = results[r.name].summary()
        log(f"{r.name}: {time.monotonic() - t0:.0f} s; segment F1 {summary['segment_f1'][0]:.3f}, "
            f"pixel AUPRC {summary['pixel_auprc'][0]:.3f}")
        scores[r.name] = [{"id": x.id, "label": x.label, "segments": sorted(x.segments), "patient_score": x.patient_score,
                           "segment_scores": x.segment_scores} for x in records]
        settings["minutes"] = round((time.monotonic() - start) / 60, 1)
        write_text(args.out / "table.md", markdown_table(results))
        write_text(args.out / "breakdown.md", breakdown_table(studies, all_records))
        write_text(args.out / "results.json", json.dumps({"settings": settings, "scores": scores}, indent=1))
    print(markdown_table(results), breakdown_table(studies, all_records), sep="\n", flush=True)
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
    p.add_argument("--offsets", type=int, nargs="+", default=[-1, 0, 1],
                   help="sagittal slices scored per real subject, relative to the mid-sagittal one")
    p.add_argument("--contrasts", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                   help="pseudo-lesion contrasts (fraction of the inserted signal change), cycled over slices")
    p.add_argument("--phantoms", type=int, default=12, help="generated studies (every second one with lesions)")
    p.add_argument("--phantom-seed", type=int, default=5000, help="first phantom seed (the shipped model's are below it)")
    p.add_argument("--strategy2", action="store_true",
                   help="also train strategy 2 (the same adaptation from a random initialisation; one more adaptation's time)")
    p.add_argument("--only", nargs="+", default=None, help="run only methods whose name contains one of these")
    args = p.parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
