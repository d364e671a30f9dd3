#!/usr/bin/env bash
# Benchmarks of Till Agent, one command: build the release binaries, run every benchmark (all
# traffic on 127.0.0.1, every loop bounded), and rewrite the tables of BENCHMARKS.md.
#
# Usage: scripts/bench.sh [fleet] [--quick]
#   fleet     only the fleet server benchmark (BENCHMARKS.md §6: a throwaway PostgreSQL cluster,
#             ingest vs COPY, dashboard queries at 1 M and 10 M payments, lag, replication on/off);
#             about 20 minutes, most of it generating 10 M payments
#   --quick   a small run that checks the benchmark itself; writes results but leaves
#             BENCHMARKS.md alone (its figures are not comparable).
# Env:     BENCH_FLEET=0     leave the fleet benchmark out of the full run
#          BENCH_DESKTOP=0   do not build/measure the desktop app
#          BENCH_DESKTOP=debug  measure a debug build of the desktop app (built if missing)
#          BENCH_SKIP_BUILD=1 use the binaries already in target/release
#
# Time: the measurements take about 6–8 minutes on 2 cores, plus about 20 for the fleet benchmark
# (BENCH_FLEET=0 leaves it out). The release build is separate: about
# 11–13 min from clean on 2 cores (most of it shared with `cargo build --release`), under a
# minute when only the bench crate changed; BENCHMARKS.md records the figure of the last run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=""
only=""
for arg in "$@"; do
  case "$arg" in
    --quick) quick="--quick" ;;
    fleet) only="fleet" ;;
    *) echo "usage: scripts/bench.sh [fleet] [--quick]" >&2; exit 2 ;;
  esac
done

log() { echo "bench: $*" >&2; }

target="${CARGO_TARGET_DIR:-$root/target}"
results="$target/bench/results"
work="$target/bench/work"
rm -rf "$results" "$work/agent-"* "$work/start-"* "$work/desktop" "$work/fleet-"*
mkdir -p "$results" "$work"
# 400 sockets on each side of the load benchmark, plus every child's pipes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "$only" = "fleet" ]; then
  # PostgreSQL's server binaries (initdb, pg_ctl) must be installed: scripts/setup.sh does it.
  if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
    log "building release binaries (agent, sandbox, fleet, bench)"
    cargo build --release --locked -p till-agent -p till-sandbox -p till-fleet -p till-bench
  fi
  BENCH_GIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  export BENCH_GIT
  "$target/release/till-bench" fleet --bin-dir "$target/release" --results "$results" --work "$work" $quick
  if [ -z "$quick" ]; then
    "$target/release/till-bench" report --results "$results" --criterion "$target/criterion" --markdown BENCHMARKS.md
    log "BENCHMARKS.md §6 rewritten (plans in $results/fleet-plans.txt)"
  fi
  exit 0
fi

log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. Build (release). The desktop app only where its system libraries are installed.
desktop_args=()
build_start=$(date +%s.%N)
if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
  log "building release binaries"
  cargo build --release --locked -p till-agent -p till-sandbox -p till-fleet -p till-bench
  cargo bench --locked -p till-bench --bench micro --no-run
  if [ "${BENCH_DESKTOP:-1}" = "debug" ]; then
    log "building the desktop app (debug)"
    cargo build --locked -p till-desktop || log "desktop build failed; measuring what exists"
  elif [ "${BENCH_DESKTOP:-1}" != "0" ] && pkg-config --exists webkit2gtk-4.1 2>/dev/null; then
    log "building the desktop app (release)"
    cargo build --release --locked -p till-desktop --features custom-protocol || log "desktop build failed; measuring what exists"
  fi
fi
build_secs=$(awk -v a="$build_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
if [ "${BENCH_DESKTOP:-1}" != "0" ]; then
  if [ "${BENCH_DESKTOP:-1}" = "debug" ] && [ -x "$target/debug/till-desktop" ]; then
    desktop_args=(--desktop "$target/debug/till-desktop" --desktop-profile debug)
  elif [ -x "$target/release/till-desktop" ]; then
    desktop_args=(--desktop "$target/release/till-desktop" --desktop-profile release)
  elif [ -x "$target/debug/till-desktop" ]; then
    desktop_args=(--desktop "$target/debug/till-desktop" --desktop-profile debug)
  fi
fi

# 2. Micro-benchmarks (criterion).
log "micro-benchmarks (criterion)"
micro_start=$(date +%s.%N)
if [ -n "$quick" ]; then
  cargo bench --locked -p till-bench --bench micro -- --warm-up-time 0.2 --measurement-time 0.5 >&2
else
  cargo bench --locked -p till-bench --bench micro -- --warm-up-time 1 --measurement-time 3 >&2
fi
micro_secs=$(awk -v a="$micro_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')

# 3. Load, events, journal, resources.
export BENCH_BUILD_SECS="$build_secs" BENCH_MICRO_SECS="$micro_secs"
BENCH_GIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
BENCH_RUSTC="$(rustc --version)"
export BENCH_GIT BENCH_RUSTC
"$target/release/till-bench" all --bin-dir "$target/release" --results "$results" --work "$work" $quick "${desktop_args[@]}"

# 4. Tables.
if [ -n "$quick" ]; then
  log "quick run: results in $results; BENCHMARKS.md left unchanged"
else
  "$target/release/till-bench" report --results "$results" --criterion "$target/criterion" --markdown BENCHMARKS.md
  log "BENCHMARKS.md rewritten"
fi
