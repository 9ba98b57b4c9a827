#!/usr/bin/env bash
# Build the IterMask network the package ships, U2ADCore/u2adcore/resources/models/itermask.pt,
# in one reproducible command (about 15 min on a shared 2-core CPU; docs/ITERMASK.md):
#
#     bash scripts/build_itermask_model.sh
#
# Same healthy training data as the shipped EdgeMAE (scripts/build_default_model.sh): 6 generated
# phantoms (seed 2026) and the real errsm_11, errsm_18 and errsm_21 with their manual cord masks;
# errsm_23, errsm_24 and sct_example_data stay held back for evaluation. 12 sagittal slices per
# study, 30 epochs of the "cpu" schedule shape (lr x0.1 every 10) at lr 1e-3, one torch thread.
# The checkpoint records the studies, the manifests' sha256, every setting and the healthy-error
# statistics the refinement stops on. Intermediate files go to build/itermask_model/.
set -euo pipefail
cd "$(dirname "$0")/.."
REALSPINE="${U2AD_REALSPINE:-$(cd .. && pwd)/shared/data/realspine}"
BUILD="build/itermask_model"
TARGET="U2ADCore/u2adcore/resources/models/itermask.pt"
PY="${U2AD_PYTHON:-.venv/bin/python}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PYTHONPATH="$PWD/U2ADCore${PYTHONPATH:+:$PYTHONPATH}"

source scripts/healthy_training_data.sh

"$PY" -m u2adcore --progress "${U2AD_PROGRESS:-bar}" pretrain --method itermask \
    --manifest "$BUILD/phantoms/manifest.csv" --manifest "$BUILD/realspine_train.csv" \
    --out "$BUILD/itermask.pt" --schedule cpu --epochs 30 --lr 1e-3 --n-slices 12 --seed 0 \
    --device cpu --ship --overwrite

cp "$BUILD/itermask.pt" "$TARGET.part"
chmod 644 "$TARGET.part"  # a package file: readable by every user
mv -f "$TARGET.part" "$TARGET"
echo "wrote $TARGET ($(du -h "$TARGET" | cut -f1)); loss curve: $BUILD/itermask_loss.png"
