"""`u2ad demo`: the README's first command. Generates a synthetic study with one T2-hyperintense
lesion, writes it like a real study (image, cord mask, disc labels, lesion mask), reads it back
from those files and detects with the shipped model, so a new user sees every output, and
whether the top-scoring segment is the lesion's, without needing any data of their own.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import PhantomConfig
from .options import add_inference_arguments

STUDY_DIR, DETECTION_DIR = "study", "detection"
STEM = "demo"
DEMO_SEED = 10
# The demo's lesion is a clear one (upper half of the generator's contrast range, 10-15 mm long):
# the first run should show what a finding looks like, not a borderline case.
DEMO_PHANTOM = PhantomConfig(lesion_contrast=(0.55, 0.75), lesion_length_mm=(10.0, 15.0))


def add_parser(subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help=help_,
        description="Write a synthetic cervical spine study with one lesion into OUT/study/, detect it with the "
        "shipped model into OUT/detection/, and print the patient score and the lesion's segment next to the "
        "top-scoring one.",
    )
    p.add_argument("--out", required=True, help="output folder (refused if it holds other files, unless --overwrite)")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help=f"phantom seed (default {DEMO_SEED})")
    p.add_argument("--model", default=None, help="checkpoint (.pt); default: the model shipped with the package")
    add_inference_arguments(p, seed=False)
    p.add_argument("--overwrite", action="store_true", help="write into an output folder that already holds other files")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from ..config import U2ADConfig
    from ..data.phantom import make_phantom, write_phantom
    from ..detect import check_output_folder, detect_study, detection_config, write_detection
    from ..io.atomic import staged_output_dir
    from ..io.study import load_study
    from ..methods.registry import get_method
    from ..scoring.segments import top_segment
    from .main import progress_callback

    out = Path(args.out)
    check_output_folder(out, (STUDY_DIR, DETECTION_DIR), args.overwrite)
    cfg = U2ADConfig()
    cfg.inference.device, cfg.inference.mc_samples = args.device, args.mc
    method = get_method("u2ad", config=cfg, checkpoint=args.model)
    cfg = detection_config(cfg, method)

    phantom = make_phantom(args.seed, n_lesions=1, cfg=DEMO_PHANTOM)
    owned = tuple(f"{STEM}_{what}.nii.gz" for what in ("image", "cord", "discs", "lesion"))
    with staged_output_dir(out / STUDY_DIR, overwrite=args.overwrite, owned=owned) as stage:
        staged = write_phantom(phantom, stage, stem=STEM)
    files = {what: out / STUDY_DIR / p.name for what, p in staged.items()}
    study = load_study(files["image"], files["cord"], levels=files["discs"], levels_kind="discs", lesion=files["lesion"], study_id=STEM)
    result = detect_study(study, method, cfg, progress=progress_callback(args))
    outputs = write_detection(result, out / DETECTION_DIR, overwrite=args.overwrite)

    top = top_segment(result.segments)
    if args.progress == "jsonl":
        all_outputs = {f"study_{k}": str(v) for k, v in files.items()} | {k: str(v) for k, v in outputs.items()}
        print(json.dumps({"event": "done", "outputs": all_outputs}), flush=True)
        return 0
    verdict = "" if result.patient_positive is None else (" (POSITIVE)" if result.patient_positive else " (negative)")
    lesion_segments = ", ".join(phantom.lesion_segments) or "none"
    found = top is not None and top.name in phantom.lesion_segments
    print(f"study (synthetic, seed {args.seed}):  {out / STUDY_DIR}")
    print(f"detection:                  {out / DETECTION_DIR}  (report: {outputs['report']})")
    print(f"patient score:              {result.patient_score:.4g}{verdict}")
    print(f"lesion's segment(s):        {lesion_segments}")
    print(f"top-scoring segment:        {'none' if top is None else f'{top.name} ({top.score:.4g})'}"
          f"  -> {'matches the lesion' if found else 'does not match the lesion'}")
    return 0
