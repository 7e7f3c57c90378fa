#!/usr/bin/env bash
# Build what a farm installs: dist/milkconsole-<version>-linux.tar.gz holding the project wheel,
# a wheelhouse of every dependency (so the parlour PC needs no internet) and install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
version=$("$PY" -c 'import milkconsole; print(milkconsole.__version__)')
out=dist/milkconsole-$version-linux
rm -rf "$out" && mkdir -p "$out/wheels"
"$PY" -m pip wheel -q --no-deps . -w "$out/wheels"
if [ "${NO_WHEELHOUSE:-0}" != "1" ]; then
  "$PY" -m pip download -q -d "$out/wheels" "$out"/wheels/milkconsole-*.whl
fi
cp installer/install.sh installer/milkconsole-gateway.service installer/milkconsole.desktop "$out/"
tar -C dist -czf "$out.tar.gz" "milkconsole-$version-linux"
echo "built $out.tar.gz"
