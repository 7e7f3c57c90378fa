#!/usr/bin/env bash
# The one test command (README, CI): set up what is missing, then lint, type-check, check the
# layer contracts, run the
# core's tests where Qt is not installed (.venv-core: scripts/test_core.sh), and run the whole
# test suite (tests/core, ui, simulators, acceptance) with coverage of the core.
# Arguments go to the whole-suite run only (`bash scripts/test.sh -m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The layer rules (pyproject.toml [tool.importlinter]): a broken one stops the run here.
.venv/bin/lint-imports
# First, and on its own: a core test that imports Qt (directly, through ui/ or through a
# fixture) fails here in a few minutes, before the long run.
bash scripts/test_core.sh
.venv/bin/python -m pytest -q -p no:cacheprovider --cov=milkconsole --cov-report=term \
  --cov-fail-under=85 "$@"
