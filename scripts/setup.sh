#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv with everything pinned in
# requirements-dev.txt and U2ADCore installed in editable mode. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.u2ad-requirements
want=$(cat requirements.txt requirements-dev.txt U2ADCore/pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e U2ADCore
  echo "$want" > "$stamp"
fi
