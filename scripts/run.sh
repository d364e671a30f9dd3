#!/usr/bin/env bash
# The one run command: installs what is missing, then runs Till Agent against the embedded
# SensePass sandbox. Extra arguments go to `till-agent run` (e.g. --autopilot-ms 3000).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
cargo build --locked -p till-agent
exec target/debug/till-agent run --sandbox "$@"
