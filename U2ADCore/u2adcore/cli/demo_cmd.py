"""`u2ad demo`: the README's first command. Copies the real sample study shipped with the package
(a cervical crop of errsm_21 with one seeded pseudo-lesion; resources/sample/README.md) into
OUT/study/, reads it back from there like any study (image, cord mask, six disc labels, lesion
mask) and detects with the shipped model into OUT/detection/, so a new user sees every output,
the verdict and whether the top-scoring segment is the lesion's, without data of their own.

`--study sample-healthy` runs on the same scan without the lesion; `--study phantom` on a
generated study (the previous demo), which needs no real data at all.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..config import PhantomConfig
from .options import add_inference_arguments, apply_inference_arguments

STUDY_DIR, DETECTION_DIR = "study", "detection"
STEM = "demo"
DEMO_SEED = 10
STUDIES = ("sample", "sample-healthy", "phantom")
# The phantom's lesion is a clear one (upper half of the generator's contrast range, 10-15 mm long).
DEMO_PHANTOM = PhantomConfig(lesion_contrast=(0.55, 0.75), lesion_length_mm=(10.0, 15.0))
_ROLES = ("image", "cord", "discs", "lesion")


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Copy the shipped real sample study (errsm_21, with a pseudo-lesion in C4-C5) into OUT/study/, "
        "detect it with the shipped model into OUT/detection/, and print the verdict, the patient score and the "
        "lesion's segment next to the top-scoring one.",
    )
    p.add_argument("--out", required=True, help="output folder (refused if it holds other files, unless --overwrite)")
    p.add_argument("--study", choices=STUDIES, default="sample",
                   help="sample: the real sample with its pseudo-lesion (default); sample-healthy: the same scan as "
                   "acquired; phantom: a generated study")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help=f"phantom seed, with --study phantom (default {DEMO_SEED})")
    p.add_argument("--model", default=None, help="checkpoint (.pt); default: the model shipped with the package")
    add_inference_arguments(p, seed=False)
    p.add_argument("--overwrite", action="store_true", help="write into an output folder that already holds other files")
    return p


def _write_phantom(stage: Path, seed: int) -> tuple[dict[str, Path], tuple[str, ...], str]:
    from ..data.phantom import make_phantom, write_phantom

    phantom = make_phantom(seed, n_lesions=1, cfg=DEMO_PHANTOM)
    return write_phantom(phantom, stage, stem=STEM), phantom.lesion_segments, f"synthetic, seed {seed}"


def _copy_sample(stage: Path, with_lesion: bool) -> tuple[dict[str, Path], tuple[str, ...], str]:
    from ..resources import sample_metadata, sample_paths

    src = sample_paths()
    chosen = {"image": src["image_lesion"] if with_lesion else src["image"], "cord": src["cord"], "discs": src["discs"]}
    if with_lesion:
        chosen["lesion"] = src["lesion"]
    files = {}
    for role, path in chosen.items():
        files[role] = stage / f"{STEM}_{role}.nii.gz"
        shutil.copyfile(path, files[role])
    if not with_lesion:
        return files, (), "real, errsm_21 as acquired (no lesion)"
    segment = sample_metadata()["pseudo_lesion"]["segment"]
    return files, (segment,), f"real, errsm_21 with a pseudo-lesion in {segment}"


def run(args: argparse.Namespace) -> int:
    from ..detect import check_output_folder
    from ..scoring.report_process import report_process_if_useful

    out = Path(args.out)
    check_output_folder(out, (STUDY_DIR, DETECTION_DIR), args.overwrite)
    with report_process_if_useful() as reports:  # forked before torch is imported (scoring/report_process.py)
        return _run(args, out, reports)


def _run(args: argparse.Namespace, out: Path, reports) -> int:
    import json

    from ..config import U2ADConfig
    from ..detect import detect_study, detection_config, write_detection
    from ..io.atomic import staged_output_dir
    from ..io.study import load_study
    from ..methods.registry import get_method
    from ..scoring.segments import top_segment
    from .main import progress_callback

    cfg = U2ADConfig()
    apply_inference_arguments(cfg, args, seed=False)  # --seed is the phantom's here
    method = get_method("u2ad", config=cfg, checkpoint=args.model)
    cfg = detection_config(cfg, method)

    owned = tuple(f"{STEM}_{role}.nii.gz" for role in _ROLES)
    with staged_output_dir(out / STUDY_DIR, overwrite=args.overwrite, owned=owned) as stage:
        if args.study == "phantom":
            staged, lesion_segments, what = _write_phantom(stage, args.seed)
        else:
            staged, lesion_segments, what = _copy_sample(stage, with_lesion=args.study == "sample")
    files = {role: out / STUDY_DIR / p.name for role, p in staged.items()}
    study = load_study(files["image"], files["cord"], levels=files["discs"], levels_kind="discs", lesion=files.get("lesion"), study_id=STEM)
    result = detect_study(study, method, cfg, progress=progress_callback(args))
    outputs = write_detection(result, out / DETECTION_DIR, overwrite=args.overwrite, report_process=reports)

    top = top_segment(result.segments)
    if args.progress == "jsonl":
        all_outputs = {f"study_{k}": str(v) for k, v in files.items()} | {k: str(v) for k, v in outputs.items()}
        print(json.dumps({"event": "done", "outputs": all_outputs}), flush=True)
        return 0
    verdict = "" if result.patient_positive is None else (" (POSITIVE)" if result.patient_positive else " (negative)")
    if result.patient_positive is None:
        answer = f"none ({result.verdict_note or 'the model carries no calibrated threshold; see `u2ad calibrate`'})"
    else:
        answer = "POSITIVE: T2 hyperintensity flagged" if result.patient_positive else "negative: nothing flagged"
    if lesion_segments:
        found = top is not None and top.name in lesion_segments
        match = f"  -> {'matches the lesion' if found else 'does not match the lesion'}"
    else:
        match = ""
    print(f"study ({what}):  {out / STUDY_DIR}")
    print(f"detection:                  {out / DETECTION_DIR}  (report: {outputs['report']})")
    print(f"verdict:                    {answer}")
    print(f"patient score:              {result.patient_score:.4g}{verdict}")
    print(f"lesion's segment(s):        {', '.join(lesion_segments) or 'none'}")
    print(f"top-scoring segment:        {'none' if top is None else f'{top.name} ({top.score:.4g})'}{match}")
    return 0
