#!/usr/bin/env bash
# Smoke test of the desktop app. Builds till-desktop (debug) and its test probe, then runs the app
# with the embedded sandbox on a private Xvfb display, isolated from the user's own Till Agent
# (temporary HOME/XDG/data/config directories, a free port, a private D-Bus session), and checks:
#   1. the agent runs inside the app's process: the app prints its address, /api/agent/health
#      answers there (paired with the sandbox), and the listening socket belongs to the app's pid;
#   2. the window "Till Agent" appears and paints the UI; a screenshot of the screen is saved;
# and, with a private D-Bus session and the probe acting as the session's tray host:
#   3. the tray menu shows the state (Online · paired till, no queued operations) and follows the
#      agent: with the sandbox offline a refund is queued and the tray says Offline and
#      "1 queued operation"; once the sandbox is back, Online and no queued operations again;
#      the receipts of that payment and refund wait for a printer that is not there (the tray says
#      "Printer: not reachable, 2 receipts waiting"), and print once a device appears;
#   4. "Start at login" writes and removes the autostart entry (with --hidden and the agent flags);
#   5. closing the window hides it (app still running), "Show Till Agent" brings it back;
#   6. a second launch hands over to the first (which shows its hidden window) and exits 0 without
#      starting a second agent;
#   7. "Quit" in the tray stops the app cleanly (exit status 0, the agent shut down);
#   8. --hidden starts in the tray (no visible window); SIGTERM stops the app cleanly;
#   9. without a tray host, closing the window quits the app (exit status 0).
# Without dbus-daemon only 1, 2 and a clean stop on SIGTERM are checked.
#
# Usage: scripts/smoke-desktop.sh [OUT.png]      (default: docs/screenshots/desktop-smoke.png)
# Env:   SMOKE_SKIP_BUILD=1   use the existing target/debug/till-desktop (and examples/desktop-probe)
#        SMOKE_TIMEOUT=30     seconds to wait for each step (agent, window, paint, tray)
#        SMOKE_SETTLE=3       seconds to wait after the first paint (lets the page load its data)
#        SMOKE_KEEP=1         keep the temporary directory (logs) and say where it is
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
title="Till Agent"
till="Till Agent sandbox till (sandbox)"

log() { echo "smoke-desktop: $*" >&2; }

for tool in Xvfb curl "$IMPORT" "$IDENTIFY"; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool (run scripts/setup.sh)"; exit 2; }
done

work="$(mktemp -d)"
xvfb_pid=""
dbus_pid=""
host_pid=""
reader_pid=""
app_pid=""
app_out=""
app_log=""

stop_group() { # pid: TERM, then KILL, the process group led by pid (the app and WebKit's helpers)
  local pid="$1"
  kill -0 -- "-$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 25); do kill -0 -- "-$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
cleanup() {
  if [ -n "$app_pid" ]; then stop_group "$app_pid"; fi
  if [ -n "$host_pid" ]; then kill "$host_pid" 2>/dev/null || true; fi
  if [ -n "$reader_pid" ]; then kill "$reader_pid" 2>/dev/null || true; fi
  if [ -n "$dbus_pid" ]; then kill "$dbus_pid" 2>/dev/null || true; fi
  if [ -n "$xvfb_pid" ]; then
    kill "$xvfb_pid" 2>/dev/null || true
    wait "$xvfb_pid" 2>/dev/null || true
  fi
  if [ -n "${SMOKE_KEEP:-}" ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() {
  log "FAILED: $*"
  if [ -n "$app_out" ] && [ -s "$app_out" ]; then log "app stdout:"; cat "$app_out" >&2; fi
  if [ -n "$app_log" ] && [ -s "$app_log" ]; then log "app stderr:"; tail -n 400 "$app_log" >&2; fi
  exit 1
}

# 1. Build.
target="${CARGO_TARGET_DIR:-$root/target}/debug"
if [ "${SMOKE_SKIP_BUILD:-0}" != "1" ]; then
  log "building till-desktop and its probe (debug)"
  (cd "$root" && cargo build -p till-desktop --bin till-desktop --example desktop-probe)
fi
app="$target/till-desktop"
probe_bin="$target/examples/desktop-probe"
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
export HOME="$work/home"
export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share" XDG_CACHE_HOME="$HOME/.cache"
export XDG_RUNTIME_DIR="$work/runtime"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
# No accessibility bridge: there is no accessibility bus on the private session.
export NO_AT_BRIDGE=1
session=0
if command -v dbus-daemon >/dev/null 2>&1; then
  # A session bus of our own, without service activation: nothing (accessibility bus, dconf, …)
  # is started on demand behind the test's back.
  cat >"$work/session.conf" <<EOF_CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$work/bus</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF_CONF
  dbus-daemon --config-file="$work/session.conf" --nofork --nopidfile --print-address=3 \
    3>"$work/dbus-address" 2>"$work/dbus.log" &
  dbus_pid=$!
  for _ in $(seq 1 50); do [ -s "$work/dbus-address" ] && break; sleep 0.1; done
  if [ -s "$work/dbus-address" ]; then
    DBUS_SESSION_BUS_ADDRESS="$(head -n1 "$work/dbus-address")"
    export DBUS_SESSION_BUS_ADDRESS
    session=1
    log "private D-Bus session at $DBUS_SESSION_BUS_ADDRESS"
  fi
fi
if [ "$session" = 0 ]; then
  # No bus at all: the app starts normally (no single-instance check, no tray).
  export DBUS_SESSION_BUS_ADDRESS="unix:path=$work/no-bus"
  log "dbus-daemon not available: skipping the tray and single-instance checks"
fi
tray=0
if [ "$session" = 1 ] && [ -x "$probe_bin" ]; then tray=1; fi

probe() { "$probe_bin" "$@"; }
app_alive() { [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; }
colours() { "$IDENTIFY" -format '%k' "$1" 2>/dev/null || echo 0; }
died() {
  local rc=0
  wait "$app_pid" || rc=$?
  app_pid=""
  fail "till-desktop exited (status $rc) early"
}
# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s; fails with WHAT when time runs out
# or when the app dies meanwhile.
wait_until() {
  local seconds="$1" what="$2"
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    if "$@"; then return 0; fi
    app_alive || died
    sleep 0.2
  done
  fail "$what (waited ${seconds}s)"
}

# launch NAME ARGS...: starts the app in its own process group (so it and its WebKit helpers can be
# stopped together), with logs in $work/NAME.out / NAME.log, and waits for its agent to be ready.
# Sets app_pid, app_out, app_log and url.
launch() {
  local name="$1"
  shift
  app_out="$work/$name.out"
  app_log="$work/$name.log"
  : >"$app_out"
  : >"$app_log"
  TILL_AGENT_LOG="${TILL_AGENT_LOG:-info}" setsid "$app" "$@" >"$app_out" 2>"$app_log" &
  app_pid=$!
  log "[$name] started till-desktop $* (pid $app_pid)"
  url=""
  reported() {
    url="$(sed -n 's/^till-agent listening on \(http:\/\/[^ ]*\)$/\1/p' "$app_out" | head -n1)"
    [ -n "$url" ]
  }
  wait_until "$timeout_s" "the app did not report its agent address" reported
  health=""
  ready() {
    health="$(curl -sf --max-time 2 "$url/api/agent/health" || true)"
    case "$health" in *'"paired":true'*) ;; *) return 1 ;; esac
    case "$health" in *'"status":"ok"'*) return 0 ;; *) return 1 ;; esac
  }
  wait_until "$timeout_s" "no paired, ready health answer from $url" ready
  log "[$name] agent at $url is ready"
}

# expect_exit WHAT: the app must exit by itself within 15 s with status 0 after a clean stop.
expect_exit() {
  local rc=0 pid="$app_pid"
  for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && fail "the app did not stop within 15 s of $1"
  wait "$pid" || rc=$?
  app_pid=""
  stop_group "$pid" # WebKit helpers left behind, if any
  [ "$rc" = 0 ] || fail "the app exited with status $rc after $1"
  grep -q 'Till Agent desktop stopped' "$app_log" || fail "no clean-stop message in the app's log after $1"
  log "stopped cleanly after $1"
}

window_is() { [ "$(probe window "$title" 2>/dev/null)" = "$1" ]; }
window_listed() { xwininfo -root -tree 2>/dev/null | grep -q "\"$title\""; }
menu_text() { probe menu "$tray_sender" "$tray_path" 2>/dev/null || true; }
menu_has() { menu_text | grep -qxF -- "$1"; }
menu_lacks() { ! menu_text | grep -qxF -- "$1"; }
click() { probe click "$tray_sender" "$tray_path" "$1" || fail "cannot click \"$1\" in the tray menu"; }
# tray_item NAME: the icon the app (launched as NAME) registered with the probe's tray host.
tray_item() {
  local before="$1"
  registered() { [ "$(grep -c '^item ' "$work/host.out" || true)" -gt "$before" ]; }
  wait_until "$timeout_s" "the app registered no tray icon" registered
  read -r _ tray_sender tray_path < <(grep '^item ' "$work/host.out" | tail -n1)
}

# 4. The session's tray host (the probe), before the app, as a desktop panel would be.
if [ "$tray" = 1 ]; then
  "$probe_bin" tray-host >"$work/host.out" 2>"$work/host.log" &
  host_pid=$!
  host_ready() { grep -q '^tray host ready' "$work/host.out"; }
  for _ in $(seq 1 50); do host_ready && break; sleep 0.1; done
  host_ready || { cat "$work/host.log" >&2; log "the probe could not act as the tray host"; exit 1; }
fi

# 5. The main run: --sandbox on a free port, its own data directory and config file.
# --autopilot-ms: the sandbox pays every payment; --waive-pos-token: the refund below needs no token.
# --printer: a device file that does not exist yet (a receipt printer switched off).
common=(--sandbox --autopilot-ms 300 --waive-pos-token --listen 127.0.0.1:0 --config "$work/config.toml"
  --printer "file://$work/lp0")
launch main "${common[@]}" --data-dir "$work/data"
port="${url##*:}"
if command -v ss >/dev/null 2>&1; then
  owner="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true)"
  if [ -n "$owner" ]; then
    [ "$owner" = "$app_pid" ] || fail "port $port belongs to pid $owner, not to the app ($app_pid)"
    log "port $port is the app's own socket (pid $app_pid)"
  fi
fi

# 6. The window: mapped with its title, then painted; the screenshot.
if [ "$tray" = 1 ]; then
  wait_until "$timeout_s" "no viewable window titled \"$title\"" window_is viewable
  log "window \"$title\" is up"
elif command -v xwininfo >/dev/null 2>&1; then
  wait_until "$timeout_s" "no window titled \"$title\"" window_listed
  log "window \"$title\" is up"
fi
painted() {
  "$IMPORT" -display "$DISPLAY" -window root "$work/probe.png" 2>/dev/null &&
    [ "$(colours "$work/probe.png")" -ge "$min_colours" ]
}
wait_until "$timeout_s" "the window did not paint" painted
sleep "$settle_s"
app_alive || died
mkdir -p "$(dirname "$out")"
"$IMPORT" -display "$DISPLAY" -window root "$out"
n="$(colours "$out")"
log "screenshot $out ($("$IDENTIFY" -format '%wx%h' "$out"), $n colours)"
[ "$n" -ge "$min_colours" ] || fail "the screenshot shows only $n colours: nothing was drawn"

if [ "$tray" = 0 ]; then
  kill -TERM "$app_pid"
  expect_exit SIGTERM
  log "ok (without the tray and single-instance checks)"
  exit 0
fi

# 7. The tray: state lines, then following the agent's connectivity.
tray_item 0
log "tray icon $tray_sender $tray_path"
wait_until "$timeout_s" "the tray never said \"Online · $till\"" menu_has "Online · $till (disabled)"
for line in "No queued operations (disabled)" "Show Till Agent" "[ ] Start at login" "Quit"; do
  menu_has "$line" || { menu_text >&2; fail "the tray menu lacks \"$line\""; }
done
log "tray menu: $(menu_text | paste -sd '|' -)"
control="$(sed -n 's/^sandbox control API: *\(http:\/\/[^ ]*\)$/\1/p' "$app_out" | head -n1)"
[ -n "$control" ] || fail "the app did not print the sandbox control URL"
# A paid order, then SensePass goes away and the POS refunds part of it: the refund is queued.
paid="$(curl -sf --max-time 60 -X POST "$url/api/transactions/init/sync" -H 'Content-Type: application/json' \
  -d '{"amount":1000,"currency":"USD","posData":{"orderId":"smoke-1"}}')" || fail "the sync payment failed"
number="$(printf '%s' "$paid" | sed -n 's/.*"TransactionNumber":"\([^"]*\)".*/\1/p')"
case "$paid" in *'"status":5'*) ;; *) fail "the payment was not approved: $paid" ;; esac
# The approval's payment commit is an outbox operation too: let it be delivered first, so that the
# refund below is the only operation queued while SensePass is away.
commit_delivered() { curl -sf "$url/api/agent/health" | grep -q '"queuedOperations":0[,}]'; }
wait_until "$timeout_s" "the payment's commit was not delivered" commit_delivered
curl -sf -X POST "$control/faults" -H 'Content-Type: application/json' -d '{"offline":true}' >/dev/null ||
  fail "cannot take the sandbox offline"
wait_until "$timeout_s" "the tray still says Online while SensePass is offline" menu_lacks "Online · $till (disabled)"
refund="$(curl -s --max-time 60 -X POST "$url/api/transactions/refund" -H 'Content-Type: application/json' \
  -d "{\"transactionNumber\":\"$number\",\"isPartial\":true,\"refundAmount\":2.5}")"
case "$refund" in *'"status":"queued"'*) ;; *) fail "the refund was not queued while offline: $refund" ;; esac
wait_until "$timeout_s" "the tray does not show the queued refund" menu_has "1 queued operation (disabled)"
wait_until "$timeout_s" "the tray does not say Offline" menu_has "Offline · $till (disabled)"
log "tray while SensePass is offline: $(menu_text | head -n2 | paste -sd '|' -)"
curl -sf -X DELETE "$control/faults" >/dev/null || fail "cannot bring the sandbox back"
wait_until 90 "the tray did not come back Online" menu_has "Online · $till (disabled)"
wait_until 90 "the queued refund was not delivered" menu_has "No queued operations (disabled)"
log "tray back online, refund delivered"
# The printer line: the approval's and the refund's receipts wait for the absent printer…
wait_until "$timeout_s" "the tray does not show the receipts waiting for the printer" \
  menu_has "Printer: not reachable, 2 receipts waiting (disabled)"
log "tray: $(menu_text | grep '^Printer' || true)"
# …and print once the device is there: a FIFO standing for /dev/usb/lp0, read (and kept open for
# reading, so each job finds a reader) by a small recorder.
mkfifo "$work/lp0"
python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(os.read(fd, 65536))' "$work/lp0" "$work/printed.bin" &
reader_pid=$!
wait_until 60 "the tray does not show the receipts printed" \
  menu_has "Printer: no status (printer does not report it) (disabled)"
[ "$(grep -ac 'CUSTOMER COPY' "$work/printed.bin" || true)" -ge 1 ] || fail "no receipt reached the printer"
log "tray: $(menu_text | grep '^Printer' || true); the receipts printed"

# 8. Start at login: the OS entry appears with the app's flags, and goes again.
# The entry is named after the product name (tauri.conf.json), not the window title.
entry="$HOME/.config/autostart/Till Agent Desktop.desktop"
click "Start at login"
wait_until 10 "\"Start at login\" is not checked after a click" menu_has "[x] Start at login"
[ -f "$entry" ] || fail "no autostart entry at $entry"
grep -q '^Exec=.*till-desktop --hidden .*--sandbox' "$entry" || { cat "$entry" >&2; fail "unexpected autostart entry"; }
click "Start at login"
wait_until 10 "\"Start at login\" is still checked after a second click" menu_has "[ ] Start at login"
[ ! -e "$entry" ] || fail "the autostart entry is still there after turning it off"
log "start at login: entry written and removed"

# 9. Close to tray, and back.
probe close "$title" || fail "cannot send the window a close request"
wait_until 10 "the window is still shown after closing it" window_is unmapped
app_alive || died
click "Show Till Agent"
wait_until 10 "\"Show Till Agent\" did not bring the window back" window_is viewable
log "closing hides the window; the tray shows it again"

# 10. Single instance: a second launch (even with other settings) shows the first one's window.
probe close "$title" || fail "cannot send the window a close request"
wait_until 10 "the window is still shown after closing it" window_is unmapped
rc=0
timeout 30 "$app" "${common[@]}" --data-dir "$work/data2" >"$work/second.out" 2>"$work/second.log" || rc=$?
[ "$rc" = 0 ] || { cat "$work/second.log" >&2; fail "the second launch exited with status $rc"; }
if grep -q '^till-agent listening' "$work/second.out"; then fail "the second launch started its own agent"; fi
wait_until 10 "the second launch did not bring the window back" window_is viewable
grep -q 'launched again' "$app_log" || fail "the running app did not log the second launch"
log "a second launch handed over and showed the window"

# 11. Quit from the tray.
click "Quit"
expect_exit "Quit in the tray"

# 12. --hidden: only the tray icon; then SIGTERM.
items="$(grep -c '^item ' "$work/host.out" || true)"
launch hidden "${common[@]}" --data-dir "$work/data" --hidden
tray_item "$items"
sleep 1
if window_is viewable; then fail "--hidden showed the window"; fi
grep -q 'hidden=true' "$app_log" || fail "the app did not start hidden"
log "--hidden: tray only, window $(probe window "$title")"
kill -TERM "$app_pid"
expect_exit SIGTERM

# 13. No tray host: closing the window quits (nothing could bring it back).
kill "$host_pid" 2>/dev/null || true
wait "$host_pid" 2>/dev/null || true
host_pid=""
launch notray "${common[@]}" --data-dir "$work/data"
wait_until "$timeout_s" "no viewable window titled \"$title\"" window_is viewable
probe close "$title" || fail "cannot send the window a close request"
expect_exit "closing the window without a tray host"
log "ok"
