#!/usr/bin/env bash
# The main job on a fresh machine: set up, then detect the T2 hyperintensity in the real sample
# shipped with the package (errsm_21 with a pseudo-lesion) with the shipped model, writing every
# output to ./u2ad_demo_output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/u2ad demo --out u2ad_demo_output "$@"
