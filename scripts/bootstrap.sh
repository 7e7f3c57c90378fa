#!/usr/bin/env bash
# Prepare this checkout on a fresh Debian/Ubuntu machine: the Debian libraries Qt needs (and
# socat/mbpoll/Xvfb/mosquitto for the tests, PostgreSQL and python3-venv for the real Odoo 17 of
# tests/acceptance/real_odoo.py, chromium and its chromedriver for the phone view's browser tests,
# poppler-utils to turn report PDFs into PNGs, a font for the reports, dpkg-dev for building the
# Debian package), then a virtualenv in .venv with the project, its dev tools and the
# installer's (PyInstaller).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PKGS=(libglib2.0-0 libdbus-1-3 libegl1 libgl1 libx11-6 libfontconfig1 libfreetype6 libxkbcommon0
  libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 xvfb xauth socat mbpoll
  postgresql python3-venv chromium chromium-driver mosquitto mosquitto-clients openssl
  poppler-utils fonts-dejavu-core dpkg-dev adduser)

if command -v dpkg >/dev/null 2>&1; then
  missing=()
  for p in "${DEB_PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    echo "bootstrap: python3 -m venv failed; installing python3-venv"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    "$PY" -m venv .venv
  fi
fi
stamp=.venv/.milkconsole-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[dev,installer]"
  echo "$want" > "$stamp"
fi
