#!/usr/bin/env bash
# Browser end-to-end tests of the web UI: Debian's chromium (never a downloaded browser) driven by
# playwright-core, against the real `till-agent run --sandbox` (target/debug/till-agent).
#
#   bash scripts/ui-tests.sh                       # run them (builds nothing: scripts/test.sh builds first)
#   UPDATE_SCREENSHOTS=1 bash scripts/ui-tests.sh  # also refresh docs/screenshots/*.png
#
# Screenshots and the downloaded receipt always land in target/test-artifacts/ui/.
# UI_TESTS_KEEP=1 keeps each agent's data directory (journal, agent.stderr) in $TMPDIR/till-ui-*.
# UI_TESTS_PROXY=1 serves ui/ from the working tree through a small proxy (see ui/tests/lib/harness.js).
# Ends with node's test-runner summary (# pass N / # fail N) and exits non-zero on failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

if [ ! -x target/debug/till-agent ]; then
  echo "target/debug/till-agent is missing: run 'cargo build -p till-agent' first" >&2
  exit 1
fi
for tool in node npm zbarimg pdftotext pdftoppm; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
[ -x /usr/bin/chromium ] || [ -n "${CHROMIUM:-}" ] || { echo "/usr/bin/chromium is missing: run scripts/setup.sh" >&2; exit 1; }

if [ ! -d ui/tests/node_modules/playwright-core ]; then
  # playwright-core only: it never downloads a browser (no install script).
  (cd ui/tests && npm ci --no-audit --no-fund --loglevel=error)
fi

# One test file at a time: each starts its own agent and chromium, and the machine is small.
exec node --test --test-concurrency=1 ui/tests/
