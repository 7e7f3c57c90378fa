#!/usr/bin/env bash
# The core's tests (tests/core/) where Qt is not installed (.venv-core, scripts/bootstrap_core.sh):
# the proof that the core and its tests run without PySide6. Arguments go to pytest
# (`bash scripts/test_core.sh -k recorder`); `make test` runs it with none.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap_core.sh
# testpaths: with no path among the arguments, tests/core/ (never the folders that need Qt).
# -p no:cacheprovider: two virtualenvs must not share one .pytest_cache's last-failed list.
.venv-core/bin/python -m pytest -q -p no:cacheprovider -o testpaths=tests/core -m core "$@"
