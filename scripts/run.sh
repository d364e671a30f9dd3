#!/usr/bin/env bash
# The one run command: installs what is missing, then runs Till Agent against the embedded
# SensePass sandbox (no credentials needed).
#
# Where a display exists ($DISPLAY or $WAYLAND_DISPLAY) it opens the desktop app (window + tray,
# agent in-process); otherwise it runs the headless agent. Both take the same flags, so extra
# arguments pass through either way, e.g.:
#   scripts/run.sh --autopilot-ms 3000          # the sandbox pays every payment after 3 s
#   scripts/run.sh --listen 127.0.0.1:8013      # another port
# TILL_HEADLESS=1 forces the headless agent even on a desktop.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh

if [ "${TILL_HEADLESS:-0}" != "1" ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then
  echo "run: display found: starting the desktop app (TILL_HEADLESS=1 for the headless agent)" >&2
  cargo build --locked -p till-desktop
  exec "${CARGO_TARGET_DIR:-target}/debug/till-desktop" --sandbox "$@"
fi

echo "run: no display: starting the headless agent" >&2
cargo build --locked -p till-agent
exec "${CARGO_TARGET_DIR:-target}/debug/till-agent" run --sandbox "$@"
