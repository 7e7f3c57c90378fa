#!/usr/bin/env bash
# The one test command (README, CI): set up what is missing, then lint, type-check and run the
# whole test suite with coverage of the core.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider --cov=milkconsole --cov-report=term \
  --cov-fail-under=85 "$@"
