#!/usr/bin/env bash
# Smoke test of the desktop shell: build till-desktop (debug), start it on a private Xvfb display,
# wait until the window has painted, take a screenshot of the whole screen, stop the app.
#
# Usage: scripts/smoke-desktop.sh [OUT.png]      (default: docs/screenshots/desktop-smoke.png)
# Env:   SMOKE_SKIP_BUILD=1   use the existing target/debug/till-desktop
#        SMOKE_TIMEOUT=20     seconds to wait for a painted window
#        SMOKE_SETTLE=3       seconds to wait after the first paint (lets the page's health check finish)
#
# Fails (non-zero) when the build fails, the app exits before the screenshot, or the screenshot is a
# single colour (nothing was drawn). Needs Xvfb and ImageMagick (`import`, `identify`); see
# scripts/setup.sh. The display number is chosen by Xvfb itself (-displayfd), so parallel runs and
# other X servers on the machine do not collide.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/docs/screenshots/desktop-smoke.png}"
timeout_s="${SMOKE_TIMEOUT:-20}"
settle_s="${SMOKE_SETTLE:-3}"
# Debian's ImageMagick by full path: another `convert`/`import` earlier in PATH may not be ImageMagick.
IMPORT="${IMAGEMAGICK_IMPORT:-/usr/bin/import}"
IDENTIFY="${IMAGEMAGICK_IDENTIFY:-/usr/bin/identify}"
# A painted page has anti-aliased text and shadows: far more colours than this. A bare window or an
# empty screen has one or two.
min_colours=16

log() { echo "smoke-desktop: $*" >&2; }

for tool in Xvfb "$IMPORT" "$IDENTIFY"; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool (run scripts/setup.sh)"; exit 2; }
done

work="$(mktemp -d)"
xvfb_pid=""
app_pid=""

cleanup() {
  if [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; then
    # The app runs in its own process group (setsid below), with WebKit's helper processes in it.
    kill -TERM -- "-$app_pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$app_pid" 2>/dev/null || true
  fi
  if [ -n "$xvfb_pid" ]; then
    kill "$xvfb_pid" 2>/dev/null || true
    wait "$xvfb_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Build.
if [ "${SMOKE_SKIP_BUILD:-0}" != "1" ]; then
  log "building till-desktop (debug)"
  (cd "$root" && cargo build -p till-desktop)
fi
app="${CARGO_TARGET_DIR:-$root/target}/debug/till-desktop"
[ -x "$app" ] || { log "no binary at $app"; exit 1; }

# 2. A private X server, 1024x768, 24-bit. Xvfb writes the display number it picked to fd 3.
Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp 3>"$work/display" 2>"$work/xvfb.log" &
xvfb_pid=$!
for _ in $(seq 1 50); do
  [ -s "$work/display" ] && break
  kill -0 "$xvfb_pid" 2>/dev/null || { log "Xvfb failed to start:"; cat "$work/xvfb.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/display" ] || { log "Xvfb did not report a display"; exit 1; }
export DISPLAY=":$(head -n1 "$work/display")"
log "Xvfb on $DISPLAY"

# 3. The app, in its own process group so it and its WebKit helpers can be stopped together.
RUST_LOG="${RUST_LOG:-info}" setsid "$app" >"$work/app.log" 2>&1 &
app_pid=$!
log "started till-desktop (pid $app_pid)"

app_alive() { kill -0 "$app_pid" 2>/dev/null; }
colours() { "$IDENTIFY" -format '%k' "$1" 2>/dev/null || echo 0; }
died() {
  local rc=0
  wait "$app_pid" || rc=$?
  app_pid=""
  log "till-desktop exited (status $rc) before the screenshot; its output:"
  cat "$work/app.log" >&2
  exit 1
}

# 4. Wait until the screen shows more than a blank window.
painted=0
for _ in $(seq 1 "$timeout_s"); do
  sleep 1
  app_alive || died
  "$IMPORT" -display "$DISPLAY" -window root "$work/probe.png" 2>/dev/null || continue
  if [ "$(colours "$work/probe.png")" -ge "$min_colours" ]; then painted=1; break; fi
done
if [ "$painted" = 1 ]; then
  sleep "$settle_s"
else
  log "no painted window after ${timeout_s}s; taking the screenshot anyway"
fi
app_alive || died

# 5. The screenshot.
mkdir -p "$(dirname "$out")"
"$IMPORT" -display "$DISPLAY" -window root "$out"
n="$(colours "$out")"
log "screenshot $out ($("$IDENTIFY" -format '%wx%h' "$out"), $n colours)"
app_alive || died

if [ "$n" -le 1 ]; then
  log "the screenshot is a single colour: nothing was drawn. App output:"
  cat "$work/app.log" >&2
  exit 1
fi
if [ "$painted" != 1 ]; then
  log "the screen shows only $n colours: the page probably did not render. App output:"
  cat "$work/app.log" >&2
  exit 1
fi
log "ok"
