#!/usr/bin/env bash
# A second, small virtualenv in .venv-core for the core's tests: the project (editable, so the
# tests see this checkout) with its dependencies and test tools from pyproject.toml, WITHOUT
# PySide6, pyqtgraph and pytest-qt (scripts/core_requirements.py filters the list). A core test
# that imports Qt, directly or through ui/ or a fixture, cannot pass there.
# Safe to run again: it reinstalls only when pyproject.toml or the filter changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv-core/bin/python ]; then
  if ! "$PY" -m venv .venv-core 2>/dev/null; then
    echo "bootstrap: python3 -m venv failed; installing python3-venv"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    rm -rf .venv-core
    "$PY" -m venv .venv-core
  fi
fi
stamp=.venv-core/.milkconsole-installed
want=$(cat pyproject.toml scripts/core_requirements.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing the core's Python packages (no Qt) into .venv-core"
  reqs=$(mktemp)
  trap 'rm -f "$reqs"' EXIT
  "$PY" scripts/core_requirements.py pyproject.toml > "$reqs"
  .venv-core/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv-core/bin/python -m pip install -q -r "$reqs"
  .venv-core/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
# Nothing may have brought Qt in by the back door (a new dependency's own requirements, say):
# then the core run would prove nothing.
if .venv-core/bin/python -c 'import importlib.util as u, sys
sys.exit(0 if any(u.find_spec(m) for m in ("PySide6", "shiboken6", "pyqtgraph", "pytestqt")) else 1)'; then
  echo "bootstrap: .venv-core has Qt installed (PySide6, pyqtgraph or pytest-qt); remove .venv-core" >&2
  exit 1
fi
