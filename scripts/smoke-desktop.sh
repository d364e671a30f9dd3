#!/usr/bin/env bash
# Smoke test of the desktop app: build till-desktop (debug), start it with the embedded sandbox on a
# private Xvfb display, isolated from the user's own Till Agent (temporary data/config/XDG dirs, a
# free port, a private D-Bus session), and check that
#   1. the agent runs inside the app's process: the app prints its address, /api/agent/health
#      answers there (paired with the sandbox), and the listening socket belongs to the app's pid;
#   2. the window "Till Agent" appears and paints the UI; a screenshot of the screen is saved;
#   3. a second launch hands over to the first and exits 0 without starting a second agent
#      (only when dbus-daemon is installed: single instance on Linux works through D-Bus);
#   4. SIGTERM stops the app cleanly (exit status 0, the agent shut down).
#
# Usage: scripts/smoke-desktop.sh [OUT.png]      (default: docs/screenshots/desktop-smoke.png)
# Env:   SMOKE_SKIP_BUILD=1   use the existing target/debug/till-desktop
#        SMOKE_TIMEOUT=30     seconds to wait for the agent, then again for a painted window
#        SMOKE_SETTLE=3       seconds to wait after the first paint (lets the page load its data)
#
# Needs Xvfb, ImageMagick (`import`, `identify`) and curl; see scripts/setup.sh. The display number
# is chosen by Xvfb itself (-displayfd), so parallel runs and other X servers do not collide.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/docs/screenshots/desktop-smoke.png}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
timeout_s="${SMOKE_TIMEOUT:-30}"
settle_s="${SMOKE_SETTLE:-3}"
# Debian's ImageMagick by full path: another `convert`/`import` earlier in PATH may not be ImageMagick.
IMPORT="${IMAGEMAGICK_IMPORT:-/usr/bin/import}"
IDENTIFY="${IMAGEMAGICK_IDENTIFY:-/usr/bin/identify}"
# A painted page has anti-aliased text and shadows: far more colours than this. A bare window or an
# empty screen has one or two.
min_colours=16

log() { echo "smoke-desktop: $*" >&2; }

for tool in Xvfb curl "$IMPORT" "$IDENTIFY"; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool (run scripts/setup.sh)"; exit 2; }
done

work="$(mktemp -d)"
xvfb_pid=""
dbus_pid=""
app_pid=""

stop_group() { # pid: TERM, then KILL, the process group led by pid (the app and WebKit's helpers)
  local pid="$1"
  kill -0 -- "-$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 25); do kill -0 -- "-$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
cleanup() {
  [ -n "$app_pid" ] && stop_group "$app_pid"
  [ -n "$dbus_pid" ] && kill "$dbus_pid" 2>/dev/null || true
  if [ -n "$xvfb_pid" ]; then
    kill "$xvfb_pid" 2>/dev/null || true
    wait "$xvfb_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  log "FAILED: $*"
  if [ -s "$work/app.out" ]; then log "app stdout:"; cat "$work/app.out" >&2; fi
  if [ -s "$work/app.log" ]; then log "app stderr:"; tail -n 60 "$work/app.log" >&2; fi
  exit 1
}

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
unset WAYLAND_DISPLAY
log "Xvfb on $DISPLAY"

# 3. Isolation: nothing of the user's own Till Agent (settings, journal, webview storage, autostart
# entry, running instance on the session bus) is read or touched.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(TILL_AGENT_[A-Z_]*\)=.*/\1/p')
export XDG_CONFIG_HOME="$work/xdg/config" XDG_DATA_HOME="$work/xdg/data" XDG_CACHE_HOME="$work/xdg/cache"
export XDG_RUNTIME_DIR="$work/xdg/runtime"
# No accessibility bus: it would be started on the private D-Bus session and only add log noise.
export NO_AT_BRIDGE=1
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
single_instance=0
if command -v dbus-daemon >/dev/null 2>&1; then
  dbus-daemon --session --nofork --nopidfile --print-address=3 3>"$work/dbus-address" 2>"$work/dbus.log" &
  dbus_pid=$!
  for _ in $(seq 1 50); do [ -s "$work/dbus-address" ] && break; sleep 0.1; done
  if [ -s "$work/dbus-address" ]; then
    export DBUS_SESSION_BUS_ADDRESS="$(head -n1 "$work/dbus-address")"
    single_instance=1
    log "private D-Bus session at $DBUS_SESSION_BUS_ADDRESS"
  fi
fi
if [ "$single_instance" = 0 ]; then
  # No bus at all: the app starts normally (no single-instance check, no tray).
  export DBUS_SESSION_BUS_ADDRESS="unix:path=$work/no-bus"
  log "dbus-daemon not available: skipping the single-instance check"
fi

# The settings a test needs: the sandbox, a free port, a data directory and a config file of its own.
app_args=(--sandbox --listen 127.0.0.1:0 --data-dir "$work/data" --config "$work/config.toml")

# 4. The app, in its own process group so it and its WebKit helpers can be stopped together.
TILL_AGENT_LOG="${TILL_AGENT_LOG:-info}" setsid "$app" "${app_args[@]}" >"$work/app.out" 2>"$work/app.log" &
app_pid=$!
log "started till-desktop (pid $app_pid)"

app_alive() { kill -0 "$app_pid" 2>/dev/null; }
colours() { "$IDENTIFY" -format '%k' "$1" 2>/dev/null || echo 0; }
died() {
  local rc=0
  wait "$app_pid" || rc=$?
  app_pid=""
  fail "till-desktop exited (status $rc) early"
}

# 5. The agent inside the app: its address on stdout, then a health answer from that address.
url=""
for _ in $(seq 1 $((timeout_s * 5))); do
  app_alive || died
  url="$(sed -n 's/^till-agent listening on \(http:\/\/[^ ]*\)$/\1/p' "$work/app.out" | head -n1)"
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || fail "the app did not report its agent address within ${timeout_s}s"
log "agent address: $url"
health=""
for _ in $(seq 1 $((timeout_s * 5))); do
  app_alive || died
  health="$(curl -sf --max-time 2 "$url/api/agent/health" || true)"
  case "$health" in *'"paired":true'*'"status":"ok"'* | *'"status":"ok"'*'"paired":true'*) break ;; esac
  sleep 0.2
done
case "$health" in
  *'"paired":true'*) log "health: $health" ;;
  *) fail "no paired, ready health answer from $url (last: ${health:-none})" ;;
esac
port="${url##*:}"
if command -v ss >/dev/null 2>&1; then
  owner="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true)"
  if [ -n "$owner" ]; then
    [ "$owner" = "$app_pid" ] || fail "port $port belongs to pid $owner, not to the app ($app_pid)"
    log "port $port is the app's own socket (pid $app_pid)"
  fi
fi

# 6. The window: mapped with its title (when xwininfo is installed), then painted.
if command -v xwininfo >/dev/null 2>&1; then
  found=0
  for _ in $(seq 1 $((timeout_s * 2))); do
    app_alive || died
    if xwininfo -root -tree 2>/dev/null | grep -q '"Till Agent"'; then found=1; break; fi
    sleep 0.5
  done
  [ "$found" = 1 ] || fail "no window titled \"Till Agent\" after ${timeout_s}s"
  log "window \"Till Agent\" is up"
fi
painted=0
for _ in $(seq 1 "$timeout_s"); do
  app_alive || died
  if "$IMPORT" -display "$DISPLAY" -window root "$work/probe.png" 2>/dev/null &&
    [ "$(colours "$work/probe.png")" -ge "$min_colours" ]; then
    painted=1
    break
  fi
  sleep 1
done
[ "$painted" = 1 ] || fail "the window did not paint within ${timeout_s}s"
sleep "$settle_s"
app_alive || died

# 7. The screenshot.
mkdir -p "$(dirname "$out")"
"$IMPORT" -display "$DISPLAY" -window root "$out"
n="$(colours "$out")"
log "screenshot $out ($("$IDENTIFY" -format '%wx%h' "$out"), $n colours)"
[ "$n" -ge "$min_colours" ] || fail "the screenshot shows only $n colours: nothing was drawn"

# 8. Single instance: a second launch (even with other settings) hands over and exits 0.
if [ "$single_instance" = 1 ]; then
  rc=0
  timeout 30 "$app" --sandbox --listen 127.0.0.1:0 --data-dir "$work/data2" --config "$work/config.toml" \
    >"$work/second.out" 2>"$work/second.log" || rc=$?
  [ "$rc" = 0 ] || { cat "$work/second.log" >&2; fail "the second launch exited with status $rc"; }
  if grep -q '^till-agent listening' "$work/second.out"; then fail "the second launch started its own agent"; fi
  app_alive || died
  for _ in $(seq 1 25); do grep -q 'launched again' "$work/app.log" && break; sleep 0.2; done
  grep -q 'launched again' "$work/app.log" || fail "the running app did not hear of the second launch"
  log "second launch handed over to the running app"
fi

# 9. Clean stop: SIGTERM to the app (not its group) shuts the agent down and exits 0.
kill -TERM "$app_pid"
rc=0
for _ in $(seq 1 75); do app_alive || break; sleep 0.2; done
app_alive && fail "the app did not stop within 15 s of SIGTERM"
wait "$app_pid" || rc=$?
pid="$app_pid"
app_pid=""
stop_group "$pid" # WebKit helpers left behind, if any
[ "$rc" = 0 ] || fail "the app exited with status $rc after SIGTERM"
grep -q 'Till Agent desktop stopped' "$work/app.log" || fail "no clean-stop message in the app's log"
log "stopped cleanly on SIGTERM"
log "ok"
