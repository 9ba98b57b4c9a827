#!/usr/bin/env bash
# Build the model the package ships, U2ADCore/u2adcore/resources/models/default.pt, in one
# reproducible command (about 3 min of training and 1 min of calibration on 2 CPU cores):
#
#     bash scripts/build_default_model.sh
#
# Training data (healthy only): 6 generated phantom studies (seed 2026) and the real healthy
# errsm_11, errsm_18 and errsm_21 with their manual cord masks. errsm_23, errsm_24, sct_example_data
# and tptbox_sample are held back for evaluation (benchmarks/recon_quality.py).
# The checkpoint records the studies, the manifests' sha256 and every setting. The recipe
# (docs/MODEL.md, "Reconstruction against trivial predictors"): the compact preset, context band
# 2, the input standardised by the running median along the eroded visible cord (visible_profile),
# the loss over the cord eroded by one pixel, mild augmentation noise (variance 0.0004, the research
# code's sigma = 0.02), the "cpu" schedule (25 epochs, lr x0.1 every 10), float16 weights.
# One torch thread (OMP_NUM_THREADS=1 unless set): identical weights run to run, and a
# shared machine stays usable. Intermediate files go to build/default_model/.
set -euo pipefail
cd "$(dirname "$0")/.."
REALSPINE="${U2AD_REALSPINE:-$(cd .. && pwd)/shared/data/realspine}"
BUILD="build/default_model"
TARGET="U2ADCore/u2adcore/resources/models/default.pt"
PY=.venv/bin/python
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

source scripts/healthy_training_data.sh

"$PY" -m u2adcore pretrain \
    --manifest "$BUILD/phantoms/manifest.csv" --manifest "$BUILD/realspine_train.csv" \
    --out "$BUILD/default.pt" --preset compact --context-band 2 --intensity-norm visible_profile \
    --loss-erode 1 --noise-var 0.0004 --schedule cpu --seed 0 --device cpu --ship --overwrite

cp "$BUILD/default.pt" "$TARGET.part"
chmod 644 "$TARGET.part"  # a package file: readable by every user
mv -f "$TARGET.part" "$TARGET"
echo "wrote $TARGET ($(du -h "$TARGET" | cut -f1)); loss curve: $BUILD/default_loss.png"
PY="$PY" U2AD_REALSPINE="$REALSPINE" bash scripts/calibrate_default_model.sh  # healthy-only thresholds (docs/DETECTION.md)
