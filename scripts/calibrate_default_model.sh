#!/usr/bin/env bash
# Calibrate the shipped model U2ADCore/u2adcore/resources/models/default.pt on healthy cords
# only, in place and atomically, WITHOUT retraining (a few minutes on 2 CPU cores):
#
#     bash scripts/calibrate_default_model.sh
#
# Stores the patient and segment thresholds (5 % healthy false-positive rate), the pixel
# threshold of the candidates (1 % of healthy cord pixels), the healthy residual spread of the
# normative scoring, and what they were set on (scripts/calibrate_default_model.py).
# Run again whenever the model or the default scoring changes.
set -euo pipefail
cd "$(dirname "$0")/.."
REALSPINE="${U2AD_REALSPINE:-$(cd .. && pwd)/shared/data/realspine}"
PY="${PY:-.venv/bin/python}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
if [ ! -f "$REALSPINE/SOURCES.md" ]; then
    echo "real spine data not found at $REALSPINE (set U2AD_REALSPINE)" >&2
    exit 2
fi
PYTHONPATH="$PWD/U2ADCore${PYTHONPATH:+:$PYTHONPATH}" "$PY" scripts/calibrate_default_model.py --realspine "$REALSPINE" "$@"
