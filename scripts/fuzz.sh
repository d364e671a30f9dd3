#!/usr/bin/env bash
# A long run of the local API fuzzer (tests/fuzz_api.rs): generated and mutated requests, sent byte
# for byte to the real till-agent binary paired with the sandbox. `cargo test` runs it for 40 s;
# this runs it for as long as you like.
#
#   bash scripts/fuzz.sh            # 30 minutes
#   bash scripts/fuzz.sh 7200       # two hours
#   FUZZ_SEED=1234 bash scripts/fuzz.sh 60   # replay a run (the seed is printed and saved)
#
# Figures (requests tried, accepted, 4xx, 5xx, panics, leaks) are printed and written to
# target/fuzz/local-api.json; the run fails on the first 20 violations, naming each request.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
secs="${1:-1800}"
cargo build --locked -p till-agent -p till-tests
FUZZ_SECS="$secs" cargo test --locked -p till-tests --test fuzz_api -- --nocapture
echo "== figures: target/fuzz/local-api.json"
cat target/fuzz/local-api.json
