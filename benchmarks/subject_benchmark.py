"""Subject-disjoint pseudo-lesion benchmark, plain and confounded: every registered method, U2AD
strategies 1/2/3 and the masking ablation, with fold spread. Writes its tables into
docs/RESULTS.md (between the `<!-- BEGIN generated:… -->` markers) with --results.

    python benchmarks/subject_benchmark.py --out build/subject_benchmark --results docs/RESULTS.md

Design (docs/RESULTS.md says why):
- Studies: every real subject with a cord mask in ../shared/data/realspine (errsm_11/18/21/23/24,
  sct_example_data, tptbox_sample) and generated phantoms; per real subject several sagittal
  slices, per phantom its mid-sagittal slice; every slice once healthy and once with 1-3
  pseudo-lesions (the same slice: a paired design). errsm_20/22 have no cord mask: skipped.
- Plain variant: lesions faded to 0.25/0.5/1 of the inserted change. Confounded variant: the
  same subjects with thicker slices (1-3 averaged), off-midline slices (±2), normal variation
  (data.confounds: bias fields, rim partial volume, masks a voxel too wide, central canal, flow
  voids or ghosting, Gibbs ringing, other scanners' contrast and noise) drawn per slice and
  applied identically to its healthy and lesioned copy, and half the lesions faint (10-40 % of
  the cord-CSF gap).
- Scored: every subject except those the pretrained model (or the DAE) trained on, which serve
  as unlabeled adaptation material only. Folds group studies by subject (thresholds chosen on
  the other folds). Adaptation (strategies 2/3, ablation) is per fold group: the model that
  scores a subject adapted on a sample of the other subjects' studies (one copy of each slice),
  never on that subject; the paper's transductive idea (adapt, unlabeled, on the clinic's own
  target-domain studies, lesions included) is kept, its leak (adapting on the very slices
  scored) is not.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
import zlib
from pathlib import Path
from typing import Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "U2ADCore"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from u2adcore.config import AdaptConfig, DAEConfig, EvaluationConfig, TrainConfig, U2ADConfig  # noqa: E402
from u2adcore.evaluation import benchmark as bm  # noqa: E402
from u2adcore.evaluation.calibrate import Truth  # noqa: E402
from u2adcore.io.atomic import write_text  # noqa: E402

import pseudo_benchmark as pb  # noqa: E402  (the studies, the DAE and the random initialisation it shares)
from healthy_cords import at_gap_fraction  # noqa: E402

ERRSM = {"dir": "sct_2014_errsm/{}", "image": "t2.nii.gz", "cord": "t2_manual_segmentation.nii.gz",
         "levels": "t2_landmarks_C2_T2_center.nii.gz"}
REAL: dict[str, dict] = {
    **{s: {**ERRSM, "dir": ERRSM["dir"].format(s)} for s in ("errsm_11", "errsm_18", "errsm_21", "errsm_23", "errsm_24")},
    "sct_example": {"dir": "sct_example_data/t2", "image": "t2.nii.gz", "cord": "t2_seg.nii.gz",
                    "levels": "labels_DERIVED-from-2014-grid.nii.gz"},
    # second site and scanner, 1.5 mm, C5-C7: cord = label 60 of the SPINEPS sub-regions, levels
    # from the vertebra instances 5/6/7 (C5-C7 bodies)
    "tptbox": {"dir": "tptbox_sample", "image": "sub-mri_label-6_T2w.nii.gz", "cord": "sub-mri_seg-subreg_label-6_msk.nii.gz",
               "cord_label": 60, "vertebrae": "sub-mri_seg-vert_label-6_msk.nii.gz"},
}
DISPLAY = {"zscore": "Z-scoring", "robustz": "robust z", "runmedian": "running median", "slic": "SLIC",
           "dbscan": "DBSCAN", "itermask": "IterMask", "dae": "DAE, strategy 1"}
S3 = "U2AD, strategy 3 (EU+AU, MC)"
S3R = "U2AD, strategy 3 + IterMask-style refinement (3 rounds)"


def log_to(start: float) -> Callable[[str], None]:
    def log(msg: str) -> None:
        print(f"[{time.monotonic() - start:7.1f} s] {msg}", flush=True)
    return log


# -- studies ---------------------------------------------------------------------------------------


def load_real(realspine: Path, name: str):
    import SimpleITK as sitk

    from u2adcore.io.images import read_image
    from u2adcore.io.study import load_study
    from u2adcore.levels.levels import build_levels, label_points

    spec = REAL[name]
    d = realspine / spec["dir"]
    if "vertebrae" in spec:
        study = load_study(d / spec["image"], d / spec["cord"], cord_label=spec["cord_label"], study_id=name)
        vert = read_image(d / spec["vertebrae"], what="vertebra labels")
        arr = sitk.GetArrayFromImage(vert)
        bodies = sitk.GetImageFromArray(np.where(np.isin(arr, (5, 6, 7)), arr, 0).astype(np.int16))
        bodies.CopyInformation(vert)
        levels = build_levels(label_points(bodies), "bodies", cord=study.cord, path=d / spec["vertebrae"])
        return dataclasses.replace(study, levels=levels)
    return load_study(d / spec["image"], d / spec["cord"], levels=d / spec["levels"], levels_kind="bodies", study_id=name)


def with_empty_lesion(study):
    import SimpleITK as sitk

    return dataclasses.replace(study, lesion=sitk.Cast(study.cord * 0, sitk.sitkUInt8))


def faded(healthy, lesioned, contrast: float):
    """`lesioned` with its lesions at `contrast` x their inserted difference from `healthy`."""
    import SimpleITK as sitk

    return dataclasses.replace(lesioned, image=healthy.image + sitk.Cast(lesioned.image - healthy.image, sitk.sitkFloat32) * float(contrast))


def build_variant(variant: str, bases: dict, args, log) -> list[bm.BenchStudy]:
    """The study set of one variant ("plain" or "confounded"), seeded per subject."""
    import SimpleITK as sitk

    from u2adcore.data import confounds as cf
    from u2adcore.data.pseudo import insert_pseudo_lesions
    from u2adcore.volume.orientation import to_canonical
    from u2adcore.volume.slices import mid_sagittal_index

    out, n_pairs = [], 0
    for name, (base, kind) in bases.items():
        rng = np.random.default_rng([args.seed, zlib.crc32(f"{variant}:{name}".encode())])
        thick = 1
        if variant == "confounded":
            thick = int(rng.choice([1, 1, 2, 3]))
            if thick > 1:
                base = cf.thicken_study(base, thick)
        cord = sitk.GetArrayViewFromImage(to_canonical(base.cord)) > 0
        mid = mid_sagittal_index(cord)
        offsets = (args.offsets if variant == "plain" else args.confounded_offsets) if kind == "real" else (0,)
        for off in offsets:
            i = mid + off
            if not (0 <= i < cord.shape[0]) or cord[i].sum() < 50:
                continue
            pair = f"{name}_s{i}"
            healthy = dataclasses.replace(base, id=f"{pair}_healthy")
            lesioned = dataclasses.replace(insert_pseudo_lesions(base, rng, n_lesions=(1, 3), slices=[i]).study, id=f"{pair}_lesion")
            if variant == "plain":
                contrast = args.contrasts[n_pairs % len(args.contrasts)]
                lesioned, group = faded(healthy, lesioned, contrast), f"contrast {contrast:g}"
            elif n_pairs % 2 == 0:
                fraction = float(rng.uniform(0.1, 0.4))
                lesioned, group = at_gap_fraction(healthy, lesioned, i, fraction), "faint (10-40 % of gap)"
            else:
                group = "as inserted"
            if variant == "confounded":
                c = cf.draw_confounds(rng)
                levels = cf.study_levels(healthy)
                healthy, lesioned = cf.apply_confounds(healthy, c, levels), cf.apply_confounds(lesioned, c, levels)
            where = "tptbox (2nd scanner)" if name == "tptbox" else kind
            out.append(bm.BenchStudy(healthy, Truth(label=False), i, name, kind, where, pair))
            out.append(bm.BenchStudy(lesioned, bm.slice_truth(lesioned, i), i, name, kind, f"{where}, {group}", pair))
            n_pairs += 1
    log(f"{variant}: {len(out)} studies of {len(bases)} subjects")
    return out


def subjects(args, log) -> dict:
    from u2adcore.data.phantom import make_phantom

    bases = {}
    for name in REAL:
        bases[name] = (with_empty_lesion(load_real(args.realspine, name)), "real")
    for k in range(args.phantoms):
        seed = args.phantom_seed + k
        bases[f"phantom_{seed}"] = (with_empty_lesion(make_phantom(seed, n_lesions=0).to_study(f"phantom_{seed}")), "phantom")
    log(f"{len(bases)} subjects: " + ", ".join(bases))
    return bases


# -- models ----------------------------------------------------------------------------------------


def trained_on(checkpoint: Path) -> set[str]:
    import torch

    payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return set((payload.get("training_data") or {}).get("studies", []))


def adapted(start: Path, studies: list[bm.BenchStudy], strategy: str, args, path: Path, log) -> Path:
    """`start` adapted with `strategy` masking on the scored slices of `studies` (AdaptConfig's CPU
    schedule on CPU; no per-epoch checkpoints)."""
    from u2adcore.training.checkpoint import load_checkpoint
    from u2adcore.training.slices_data import concat, from_prepared
    from u2adcore.training.distributed import resolve_device
    from u2adcore.uncertainty.adapt import adapt, maps_path, override_schedule
    from u2adcore.volume.preprocess import prepare_slices

    if path.exists():
        return path
    pre = U2ADConfig().preprocess
    data = concat(from_prepared(prepare_slices(b.study, dataclasses.replace(pre, slices=[b.slice_index]))) for b in studies)
    cfg = AdaptConfig(strategy=strategy, schedule=args.schedule, device=args.device, seed=args.seed)
    cfg = dataclasses.replace(cfg, checkpoint_every=10**6)
    if args.adapt_epochs:
        cfg = override_schedule(cfg, resolve_device(args.device), epochs=args.adapt_epochs)
    t0 = time.monotonic()
    adapt(load_checkpoint(start, "cpu"), data, cfg, out_path=path)
    maps_path(path).unlink(missing_ok=True)
    log(f"adapted {start.name} ({strategy}) on {len(data)} slices in {time.monotonic() - t0:.0f} s -> {path.relative_to(args.out)}")
    return path


def dae(args, path: Path, log) -> Path:
    """The DAE baseline (strategy 1) on the shipped model's pretraining studies."""

    from u2adcore.methods.dae import save_dae, train_dae

    if path.exists():
        return path
    cfg = U2ADConfig()
    data = pb.healthy_training_slices(args.realspine, args.dae_slices, cfg, args.out / "pretrain_phantoms")
    train = dataclasses.replace(TrainConfig(), epochs=args.dae_epochs, lr_step_epochs=max(args.dae_epochs // 3, 1), device=args.device)
    t0 = time.monotonic()
    model, _ = train_dae(data, train, DAEConfig())
    save_dae(path, model, train, cfg.preprocess, data.summary())
    log(f"trained the DAE on {len(data)} slices in {time.monotonic() - t0:.0f} s")
    return path


# -- the run ---------------------------------------------------------------------------------------


def config(args, mc: int) -> U2ADConfig:
    cfg = U2ADConfig()
    cfg.inference.device, cfg.inference.mc_samples = args.device, mc
    return cfg


def run(args) -> dict:
    from u2adcore.methods.registry import available, get_method, takes_checkpoint
    from u2adcore.resources import default_model_path
    from u2adcore.training.checkpoint import file_sha256

    start = time.monotonic()
    log = log_to(start)
    args.out.mkdir(parents=True, exist_ok=True)
    pretrained = args.model or default_model_path()
    from u2adcore.resources import itermask_model_path

    trained = trained_on(pretrained) | set(pb.DAE_SUBJECTS)
    if "itermask" in available() and itermask_model_path().is_file():
        trained |= trained_on(itermask_model_path())
    excluded = trained & set(REAL)
    bases = subjects(args, log)
    scored_kinds = {s: k for s, (_, k) in bases.items() if s not in excluded}
    folds = bm.subject_folds(scored_kinds, args.folds, args.seed)
    group_of = {s: f % args.adapt_groups for s, f in folds.items()}
    log(f"scored subjects by fold: {folds}; never scored (pretraining): {sorted(excluded)}")
    variants = {v: build_variant(v, bases, args, log) for v in args.variants}
    eval_cfg = EvaluationConfig(seed=args.seed)
    mc, single = config(args, args.mc), config(args, 1)
    refined = config(args, args.mc)
    refined.inference.refine_rounds = 3  # docs/ITERMASK.md: the U2AD option measured on and off
    results: dict[str, dict] = {v: {} for v in variants}
    scores: dict[str, dict] = {v: {} for v in variants}
    timings: dict[str, float] = {}

    def record(variant: str, name: str, scored: list, records: list, t0: float) -> None:
        res = bm.evaluate(records, [folds[b.subject] for b in scored], eval_cfg)
        results[variant][name], scores[variant][name] = res, records
        timings[f"{variant}: {name}"] = round(time.monotonic() - t0, 1)
        log(f"{variant}: {name}: {time.monotonic() - t0:.0f} s; segment F1 {bm.summary(res, 'segment_f1')[0]:.3f}, "
            f"patient AUROC {bm.summary(res, 'patient_auroc')[0]:.3f}, pixel AUPRC {bm.summary(res, 'pixel_auprc')[0]:.3f}")
        write_outputs(args, variants, results, scores, settings(), folds)

    def settings() -> dict:
        return {"seed": args.seed, "folds": args.folds, "adapt_groups": args.adapt_groups, "adapt_slices": args.adapt_slices,
                "mc": args.mc, "schedule": args.schedule, "adapt_epochs": args.adapt_epochs, "offsets": args.offsets, "confounded_offsets": args.confounded_offsets,
                "contrasts": args.contrasts, "phantoms": args.phantoms, "phantom_seed": args.phantom_seed,
                "dae_epochs": args.dae_epochs, "dae_slices": args.dae_slices, "excluded": sorted(excluded),
                "subject_folds": folds, "model": str(pretrained), "model_sha256": file_sha256(pretrained),
                "adapt_config": dataclasses.asdict(AdaptConfig()), "minutes": round((time.monotonic() - start) / 60, 1),
                "timings_s": timings, "n_studies": {v: len(s) for v, s in variants.items()}}

    def scored_of(v):
        return [b for b in variants[v] if b.subject in folds]

    def calibration(v: str, g: int) -> list:
        """Healthy studies for the normative scale of group g's model: the never-scored subjects',
        else the other groups' healthy studies."""
        healthy = [b for b in variants[v] if not b.truth.label]
        unscored = [b for b in healthy if b.subject not in group_of]
        chosen = unscored if len(unscored) >= 3 else [b for b in healthy if b.subject in group_of and group_of[b.subject] != g]
        by_subject: dict[str, list] = {}
        for b in chosen:
            by_subject.setdefault(b.subject, []).append(b)
        # the middle slice of each subject: the spread is a property of the model, a few cords suffice
        return [sorted(bs, key=lambda b: b.slice_index)[len(bs) // 2] for bs in by_subject.values()]

    def per_group(v: str, name: str, make: Callable[[int], object], cfg: U2ADConfig) -> None:
        """Score each adaptation group's studies with the method built for that group (its
        normative scale learned on healthy studies outside the group)."""
        t0 = time.monotonic()
        scored = scored_of(v)
        records: dict[int, object] = {}
        for g in range(args.adapt_groups):
            idx = [k for k, b in enumerate(scored) if group_of[b.subject] == g]
            method = bm.with_healthy_scale(make(g), calibration(v, g), cfg)
            for k, r in zip(idx, bm.score_studies([scored[k] for k in idx], method, cfg)):
                records[k] = r
        record(v, name, scored, [records[k] for k in range(len(scored))], t0)

    def adaptation_set(v: str, g: int) -> list:
        pool = [b for b in variants[v] if b.subject not in group_of or group_of[b.subject] != g]
        return bm.adaptation_sample(pool, args.adapt_slices, args.seed + g)

    # checkpoints are reused by name: the name carries what they depend on
    run_key = f"n{args.adapt_slices}_e{args.adapt_epochs or args.schedule}_s{args.seed}_{file_sha256(pretrained)[:8]}"

    def model(v: str, g: int, strategy: str, tag: str, init: Path) -> Path:
        return adapted(init, adaptation_set(v, g), strategy, args,
                       args.out / v / f"{tag}_g{g}_{strategy.replace('+', '')}_{run_key}.pt", log)

    free = [m for m in available() if not takes_checkpoint(m)]
    others = [m for m in available() if takes_checkpoint(m) and m not in ("u2ad", "dae")]
    rows: list[tuple[str, Callable[[str], None]]] = []
    for m in free:
        rows.append((DISPLAY.get(m, m), lambda v, m=m: per_group(v, DISPLAY.get(m, m), lambda g: get_method(m, config=mc), mc)))
    rows += [
        (S3, lambda v: per_group(v, S3, lambda g: get_method("u2ad", config=mc, checkpoint=model(v, g, "eu+au", "adapted", pretrained)), mc)),
        (S3R, lambda v: per_group(v, S3R, lambda g: get_method("u2ad", config=refined, checkpoint=model(v, g, "eu+au", "adapted", pretrained)), refined)),
        ("U2AD, strategy 1 (pretrained only, MC)", lambda v: per_group(v, "U2AD, strategy 1 (pretrained only, MC)",
                                                                          lambda g: get_method("u2ad", config=mc, checkpoint=pretrained), mc)),
        ("DAE, strategy 1", lambda v: per_group(v, "DAE, strategy 1", lambda g: get_method("dae", config=mc, checkpoint=dae(args, args.out / f"dae_e{args.dae_epochs}_n{args.dae_slices}.pt", log)), mc)),
    ]
    for m in others:
        def other(v, m=m):
            try:
                per_group(v, DISPLAY.get(m, m), lambda g: get_method(m, config=mc), mc)
            except Exception as exc:  # a method that needs weights we do not have: say so, go on
                log(f"{m}: skipped ({exc})")
        rows.append((DISPLAY.get(m, m), other))
    rows += [
        ("ablation: EU-guided, MC", lambda v: per_group(v, "ablation: EU-guided, MC", lambda g: get_method("u2ad", config=mc, checkpoint=model(v, g, "eu", "adapted", pretrained)), mc)),
        ("ablation: random masking, MC", lambda v: per_group(v, "ablation: random masking, MC", lambda g: get_method("u2ad", config=mc, checkpoint=model(v, g, "random", "adapted", pretrained)), mc)),
        ("ablation: random masking, single pass", lambda v: per_group(v, "ablation: random masking, single pass", lambda g: get_method("u2ad", config=single, checkpoint=model(v, g, "random", "adapted", pretrained)), single)),
    ]
    if args.strategy2:
        name2 = "U2AD, strategy 2 (target only, EU+AU, MC)"
        rows.append((name2, lambda v: per_group(v, name2, lambda g: get_method(
            "u2ad", config=mc, checkpoint=model(v, g, "eu+au", "target_only", pb.random_init_model(pretrained, args.out / f"random_init_{file_sha256(pretrained)[:8]}_s{args.seed}.pt", args.seed))), mc)))
    for name, row in rows:
        if args.only and not any(k.lower() in name.lower() for k in args.only):
            continue
        for v in variants:
            row(v)
    log("done")
    write_outputs(args, variants, results, scores, settings(), folds)
    return results


# -- outputs ---------------------------------------------------------------------------------------


HEADLINE = ("patient_auroc", "segment_f1", "pixel_auprc", "pixel_auroc", "patient_specificity")


def headline(results: dict) -> str:
    """Both variants side by side on the issue's deciding metrics."""
    variants = list(results)
    names = list(dict.fromkeys(n for v in variants for n in results[v]))
    cols = [(v, m) for m in HEADLINE for v in variants]
    lines = ["| method | " + " | ".join(f"{bm._HEADERS[m]} ({v})" for v, m in cols) + " |", "|---|" + "---|" * len(cols)]
    for n in names:
        cells = []
        for v, m in cols:
            s = bm.summary(results[v][n], m) if n in results[v] else (np.nan, np.nan, 0)
            cells.append("–" if not s[2] else f"{s[0]:.3f} ± {s[1]:.3f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def blocks(args, variants, results, scores, settings: dict, folds) -> dict[str, str]:
    out = {"headline": headline(results)}
    for v in results:
        out[f"{v}_table"] = bm.table(results[v])
        out[f"{v}_recon"] = bm.table(results[v], bm.RECON_METRICS)
        scored = [b for b in variants[v] if b.subject in folds]
        out[f"{v}_breakdown"] = bm.breakdown(scored, scores[v])
    n = {v: (len([b for b in variants[v] if b.subject in folds]), sum(b.truth.label for b in variants[v] if b.subject in folds)) for v in variants}
    out["settings"] = (
        f"Model `{Path(settings['model']).relative_to(REPO) if Path(settings['model']).is_relative_to(REPO) else settings['model']}`, "
        f"sha256 `{settings['model_sha256']}`. Run time {settings['minutes']} min on the shared 2-core CPU. "
        + "; ".join(f"{v}: {a} scored studies ({p} with lesions)" for v, (a, p) in n.items())
        + f". Folds (by subject): {settings['subject_folds']}. Never scored (the pretrained model or the DAE trained on them): "
        f"{', '.join(settings['excluded'])}. Adaptation: {args.adapt_groups} groups of folds, {args.adapt_slices} slices each, "
        f"schedule `{args.schedule}`; inference K = {args.mc}.\n")
    return out


def write_outputs(args, variants, results, scores, settings: dict, folds) -> None:
    made = blocks(args, variants, results, scores, settings, folds)
    write_text(args.out / "tables.md", "\n".join(f"## {k}\n\n{t}" for k, t in made.items()))
    dump = {"settings": settings, "folds": {v: {n: [dataclasses.asdict(f) for f in r.folds]
                                                for n, r in res.items()} for v, res in results.items()},
            "scores": {v: {n: [{"id": x.id, "label": x.label, "segments": sorted(x.segments), "patient_score": x.patient_score,
                                "segment_scores": x.segment_scores} for x in recs] for n, recs in s.items()} for v, s in scores.items()}}
    write_text(args.out / "results.json", json.dumps(dump, indent=1, default=str))
    if args.results is not None:
        fill(args.results, made)


def fill(path: Path, made: dict[str, str]) -> None:
    """Replace each `<!-- BEGIN generated:NAME -->…<!-- END generated:NAME -->` block of `path`."""
    text = path.read_text()
    for name, body in made.items():
        pattern = re.compile(rf"(<!-- BEGIN generated:{name} -->\n).*?(<!-- END generated:{name} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
    write_text(path, text)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for adapted checkpoints, the DAE, tables.md and results.json")
    p.add_argument("--results", type=Path, default=None, help="markdown file whose generated blocks are rewritten (docs/RESULTS.md)")
    p.add_argument("--realspine", type=Path, default=Path(os.environ.get("U2AD_REALSPINE", REPO.parent / "shared" / "data" / "realspine")))
    p.add_argument("--model", type=Path, default=None, help="pretrained EdgeMAE (default: the shipped model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--schedule", default="auto", choices=("auto", "cpu", "paper"), help="AdaptConfig.schedule")
    p.add_argument("--variants", nargs="+", default=["plain", "confounded"], choices=("plain", "confounded"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=4, help="subject-grouped folds of the threshold protocol")
    p.add_argument("--adapt-groups", type=int, default=2, help="adaptation runs per strategy: folds f with f %% G == g share one")
    p.add_argument("--adapt-slices", type=int, default=16, help="slices each adaptation trains on")
    p.add_argument("--adapt-epochs", type=int, default=None, help="override the schedule's epoch count (stages keep their proportions)")
    p.add_argument("--mc", type=int, default=10, help="Monte-Carlo passes K at inference (the paper's 10)")
    p.add_argument("--offsets", type=int, nargs="+", default=[-2, -1, 0, 1, 2], help="plain: slices per real subject around the mid-sagittal")
    p.add_argument("--confounded-offsets", type=int, nargs="+", default=[-3, -2, 0, 2, 3], help="confounded: off-midline slices")
    p.add_argument("--contrasts", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--phantoms", type=int, default=16)
    p.add_argument("--phantom-seed", type=int, default=5000)
    p.add_argument("--dae-epochs", type=int, default=12)
    p.add_argument("--dae-slices", type=int, default=5)
    p.add_argument("--no-strategy2", dest="strategy2", action="store_false")
    p.add_argument("--only", nargs="+", default=None, help="run only rows whose name contains one of these")
    run(p.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
