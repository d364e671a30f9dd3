#!/usr/bin/env bash
# The one test command: installs what is missing, builds everything, runs every test.
# Used as-is by CI (.ci/run). Safe to re-run; exits non-zero on the first failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

start=$(date +%s)
bash scripts/setup.sh

echo "== OpenAPI document (openapi-spec-validator)"
python3 -m openapi_spec_validator docs/openapi.json

echo "== build (whole workspace, debug)"
cargo build --locked --workspace --all-targets

echo "== cargo tests (unit, property, integration, end-to-end)"
cargo test --locked --workspace

if [ -x scripts/package-check.sh ]; then
  echo "== headless package (lintian, install into a temporary root, upgrade, downgrade refusal, purge)"
  bash scripts/package-check.sh target/debug/till-agent
fi

if [ -x scripts/ui-tests.sh ]; then
  echo "== browser tests (headless chromium)"
  bash scripts/ui-tests.sh
fi

if [ -x scripts/smoke-desktop.sh ]; then
  echo "== desktop smoke test (Xvfb)"
  bash scripts/smoke-desktop.sh target/desktop-smoke.png
fi

if [ -x scripts/smoke-customer-display.sh ]; then
  echo "== customer display on a second monitor (Xorg dummy driver)"
  SMOKE_SKIP_BUILD=1 bash scripts/smoke-customer-display.sh target/customer-display.png
fi

echo "== all tests passed in $(( $(date +%s) - start )) s"
