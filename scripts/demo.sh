#!/usr/bin/env bash
# The main job on a fresh machine: set up, generate a study with a T2 hyperintensity, detect it
# with the shipped model, and write every output to ./u2ad_demo_output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/u2ad demo --out u2ad_demo_output "$@"
