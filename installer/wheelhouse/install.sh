#!/bin/sh
# Install Milk Console with pip from this wheelhouse, offline, into a virtual environment:
#
#     ./install.sh [PREFIX]                  (default: /opt/milkconsole-venv)
#     PYTHON=python3.12 ./install.sh         (choose the Python; default: python3)
#
# The wheelhouse carries wheels for the Pythons listed in SUPPORTED-PYTHON; any other Python is
# refused with one message saying which. This installs the program only: for a parlour PC the
# Debian package is the supported way (service, user, config, Qt's libraries as dependencies).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/opt/milkconsole-venv}
py=${PYTHON:-python3}

if ! command -v "$py" >/dev/null 2>&1; then
    echo "milkconsole: no $py here; set PYTHON to a Python $(cat "$here/SUPPORTED-PYTHON")" >&2
    exit 2
fi
# shellcheck disable=SC2046 # one word per supported version
"$py" "$here/check_python.py" $(cat "$here/SUPPORTED-PYTHON") || exit 2
"$py" -m venv "$prefix"
"$prefix/bin/python" -m pip install -q --no-index --find-links "$here/wheels" milkconsole
echo "installed: $("$prefix/bin/milkconsole" --version) in $prefix (run $prefix/bin/milkconsole)"
