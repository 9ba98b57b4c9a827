#!/usr/bin/env bash
# The whole test suite: set up .venv, then run every test under Testing/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
