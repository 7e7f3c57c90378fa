#!/usr/bin/env bash
# The one run command (README): set up what is missing, then open the console on the simulated
# 24-stall demo parlour. Without a display it runs the headless demo (simulators + gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/milkconsole demo "$@"
fi
echo "demo: no display found; running the headless demo (simulated meters + gateway)."
exec .venv/bin/milkconsole demo --headless "$@"
