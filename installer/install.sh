#!/usr/bin/env bash
# Install Milk Console on a parlour PC from this folder (run as root):
#   ./install.sh [PREFIX]          (default /opt/milkconsole)
# Creates PREFIX/venv from the bundled wheels (offline), links /usr/local/bin/milkconsole,
# installs the desktop entry and the headless gateway's systemd unit (not enabled).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/opt/milkconsole}
python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install -q --no-index --find-links "$here/wheels" milkconsole
if [ "$prefix" = /opt/milkconsole ] && [ "$(id -u)" -eq 0 ]; then
  ln -sf "$prefix/venv/bin/milkconsole" /usr/local/bin/milkconsole
  install -m 644 "$here/milkconsole.desktop" /usr/share/applications/milkconsole.desktop
  install -m 644 "$here/milkconsole-gateway.service" /etc/systemd/system/milkconsole-gateway.service
  echo "installed; console: milkconsole; headless: systemctl enable --now milkconsole-gateway"
else
  echo "installed in $prefix (run $prefix/venv/bin/milkconsole)"
fi
