#!/usr/bin/env bash
# Smoke test of the desktop app's customer display on two monitors. Runs till-desktop with the
# embedded sandbox on a private X server whose RandR reports two monitors side by side, isolated
# from the user's own Till Agent (temporary HOME/XDG/data/config directories, a free port, no
# session bus), and checks:
#   1. with one monitor there is no customer window; plugging in a second one (xrandr) opens
#      "Till Agent — customer display" on it, mapped, at the monitor's exact position and size,
#      while the main window "Till Agent" stays on the first monitor;
#   2. a payment started over the POS API shows on the second monitor: the QR code decoded from
#      the screenshot of that monitor is the payment's own QR URL (the live cart and total beside
#      it); a screenshot of both monitors is saved;
#   3. the payment is approved (the sandbox pays it): the second monitor shows the outcome (the
#      approved tick, no QR any more); a second screenshot of both monitors is saved;
#   4. Settings → Customer display `off` (POST /api/agent/display, manager) closes the window,
#      `second_screen` opens it again; unplugging the second monitor closes it;
#   5. SIGTERM stops the app cleanly.
#
# Why Xorg with the dummy driver and not Xvfb: Xvfb has a single RandR output, and GTK counts a
# monitor only when it has an output (`xrandr --setmonitor` on Xvfb gives a second monitor that
# GTK, and so Tauri, ignores). The dummy driver (xserver-xorg-video-dummy 0.4+) has sixteen
# virtual outputs DUMMY0…DUMMY15; enabling DUMMY1 right of DUMMY0 is what plugging in a second
# screen looks like to the app. Xorg runs unprivileged here (config file by relative path, no VT).
#
# Usage: scripts/smoke-customer-display.sh [OUT.png]  (default: docs/screenshots/customer-display.png;
#        the outcome goes next to it as OUT-approved.png)
# Env:   SMOKE_SKIP_BUILD=1   use the existing target/debug/till-desktop and till-agent
#        SMOKE_TIMEOUT=30     seconds to wait for each step
#        SMOKE_KEEP=1         keep the temporary directory (logs) and say where it is
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/docs/screenshots/customer-display.png}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
out_approved="${out%.png}-approved.png"
timeout_s="${SMOKE_TIMEOUT:-30}"
# Debian's ImageMagick by full path: another `convert`/`import` earlier in PATH may not be ImageMagick.
IMPORT="${IMAGEMAGICK_IMPORT:-/usr/bin/import}"
CONVERT="${IMAGEMAGICK_CONVERT:-/usr/bin/convert}"
XORG="${XORG:-Xorg}"
DUMMY_DRIVER="${DUMMY_DRIVER:-/usr/lib/xorg/modules/drivers/dummy_drv.so}"
# Each monitor: 1024x768. The second one is right of the first.
mon_w=1024
mon_h=768
customer_title_tail='customer display'
# The approved outcome's colour (ui/style.css --ok): the big tick and the title.
ok_colour='#15803d'

log() { echo "smoke-customer-display: $*" >&2; }

for tool in "$XORG" xrandr xwininfo curl python3 zbarimg "$IMPORT" "$CONVERT"; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool (run scripts/setup.sh)"; exit 2; }
done
[ -f "$DUMMY_DRIVER" ] || { log "missing the Xorg dummy driver $DUMMY_DRIVER (run scripts/setup.sh)"; exit 2; }

work="$(mktemp -d)"
xorg_pid=""
app_pid=""
app_out="$work/app.out"
app_log="$work/app.log"

stop_group() { # pid: TERM, then KILL, the process group led by pid (the app and WebKit's helpers)
  local pid="$1"
  kill -0 -- "-$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 25); do kill -0 -- "-$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
cleanup() {
  if [ -n "$app_pid" ]; then stop_group "$app_pid"; fi
  if [ -n "$xorg_pid" ]; then
    kill "$xorg_pid" 2>/dev/null || true
    wait "$xorg_pid" 2>/dev/null || true
  fi
  if [ -n "${SMOKE_KEEP:-}" ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() {
  log "FAILED: $*"
  log "windows: $(xwininfo -root -children 2>/dev/null | grep -F '": (' | sed 's/^ *//' | paste -sd '|' -)"
  if [ -s "$app_out" ]; then log "app stdout:"; cat "$app_out" >&2; fi
  if [ -s "$app_log" ]; then log "app stderr:"; tail -n 60 "$app_log" >&2; fi
  exit 1
}

# 1. Build.
target="${CARGO_TARGET_DIR:-$root/target}/debug"
if [ "${SMOKE_SKIP_BUILD:-0}" != "1" ]; then
  log "building till-desktop and till-agent (debug)"
  (cd "$root" && cargo build -p till-desktop --bin till-desktop && cargo build -p till-agent --bin till-agent)
fi
app="$target/till-desktop"
agent_cli="$target/till-agent"
[ -x "$app" ] || { log "no binary at $app"; exit 1; }
[ -x "$agent_cli" ] || { log "no binary at $agent_cli"; exit 1; }

# 2. A private X server with the dummy driver: one 1024x768 monitor to start with, room for two.
cat >"$work/dummy.conf" <<EOF_CONF
Section "ServerFlags"
  Option "AutoAddDevices" "false"
  Option "AutoAddGPU" "false"
  Option "DontVTSwitch" "true"
EndSection
Section "Device"
  Identifier "dummy"
  Driver "dummy"
  VideoRam 65536
EndSection
Section "Monitor"
  Identifier "monitor"
  HorizSync 5.0 - 1000.0
  VertRefresh 5.0 - 200.0
EndSection
Section "Screen"
  Identifier "screen"
  Device "dummy"
  Monitor "monitor"
  DefaultDepth 24
  SubSection "Display"
    Depth 24
    Virtual $((2 * mon_w)) $mon_h
  EndSubSection
EndSection
EOF_CONF
# Unprivileged Xorg accepts only a relative config path: start it in $work. -noreset: the server
# keeps its RandR state between clients.
(cd "$work" && exec "$XORG" -displayfd 3 -noreset -nolisten tcp -novtswitch -keeptty \
  -logfile ./xorg.log -config dummy.conf 3>"$work/display" 2>"$work/xorg.err") &
xorg_pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/display" ] && break
  kill -0 "$xorg_pid" 2>/dev/null || { log "Xorg failed to start:"; tail -n 30 "$work/xorg.err" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/display" ] || { log "Xorg did not report a display"; exit 1; }
export DISPLAY=":$(head -n1 "$work/display")"
unset WAYLAND_DISPLAY
monitors() { xrandr --listmonitors | sed -n 's/^Monitors: //p'; }
xrandr --output DUMMY0 --mode "${mon_w}x${mon_h}" --pos 0x0 >/dev/null
[ "$(monitors)" = 1 ] || fail "expected one monitor at the start: $(xrandr --listmonitors)"
log "Xorg (dummy driver) on $DISPLAY, one monitor"

# 3. Isolation: nothing of the user's own Till Agent is read or touched; no session bus (no tray,
# no single-instance hand-over: neither is under test here).
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(TILL_AGENT_[A-Z_]*\)=.*/\1/p')
export HOME="$work/home"
export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share" XDG_CACHE_HOME="$HOME/.cache"
export XDG_RUNTIME_DIR="$work/runtime"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
export NO_AT_BRIDGE=1
export DBUS_SESSION_BUS_ADDRESS="unix:path=$work/no-bus"

app_alive() { [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; }
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
# json EXPR: reads JSON on stdin, prints the Python expression EXPR of it (`j` is the document).
json() { python3 -c "import json,sys; j=json.load(sys.stdin); v=$1; print('' if v is None else v)"; }

# Windows. Without a window manager, top-level windows are the root's children, at the position
# the app asked for. The customer window is matched by the end of its title, which is all ASCII
# (xwininfo may print the em dash escaped, depending on the locale).
window_id() { # ENDING: the id of the top-level window whose title ends with ENDING
  xwininfo -root -children 2>/dev/null | grep -F -- "$1\": (" | head -n1 | awk '{print $1}'
}
# geometry ID: "X Y WIDTH HEIGHT STATE" of a window (STATE: IsViewable, IsUnMapped, …).
geometry() {
  xwininfo -id "$1" 2>/dev/null | awk -F: '
    /Absolute upper-left X/ {x=$2} /Absolute upper-left Y/ {y=$2}
    /^ *Width/ {w=$2} /^ *Height/ {h=$2} /Map State/ {s=$2}
    END {gsub(/ /,"",x); gsub(/ /,"",y); gsub(/ /,"",w); gsub(/ /,"",h); gsub(/ /,"",s); print x, y, w, h, s}'
}
customer_viewable() {
  local id
  id="$(window_id "$customer_title_tail")"
  [ -n "$id" ] && [ "$(geometry "$id" | awk '{print $5}')" = IsViewable ]
}
customer_absent() { [ -z "$(window_id "$customer_title_tail")" ]; }
main_viewable() {
  local id
  id="$(window_id "Till Agent")"
  [ -n "$id" ] && [ "$(geometry "$id" | awk '{print $5}')" = IsViewable ]
}

# Screens. shot FILE: the whole root (both monitors); right FILE OUT: the second monitor of it.
shot() { "$IMPORT" -display "$DISPLAY" -window root "$1" 2>/dev/null; }
right() { "$CONVERT" "$1" -crop "${mon_w}x${mon_h}+${mon_w}+0" +repage "$2"; }
qr_on_second() { # prints the QR data shown on the second monitor, if any
  shot "$work/now.png" && right "$work/now.png" "$work/right.png" && zbarimg -q --raw "$work/right.png" 2>/dev/null || true
}
ok_pixels() { # pixels of the approved colour on the second monitor
  "$CONVERT" "$work/right.png" -fill black +opaque "$ok_colour" -fill white -opaque "$ok_colour" \
    -format '%[fx:round(mean*w*h)]' info: 2>/dev/null || echo 0
}

# 4. The app: sandbox, free port, own data directory and config file. No autopilot: the payment
# waits for its customer until the script pays it through the sandbox's control API.
TILL_AGENT_LOG="${TILL_AGENT_LOG:-info}" setsid "$app" --sandbox --waive-pos-token --listen 127.0.0.1:0 \
  --config "$work/config.toml" --data-dir "$work/data" >"$app_out" 2>"$app_log" &
app_pid=$!
log "started till-desktop (pid $app_pid)"
url=""
reported() {
  url="$(sed -n 's/^till-agent listening on \(http:\/\/[^ ]*\)$/\1/p' "$app_out" | head -n1)"
  [ -n "$url" ]
}
wait_until "$timeout_s" "the app did not report its agent address" reported
ready() {
  local health
  health="$(curl -sf --max-time 2 "$url/api/agent/health" || true)"
  case "$health" in *'"paired":true'*) ;; *) return 1 ;; esac
  case "$health" in *'"status":"ok"'*) return 0 ;; *) return 1 ;; esac
}
wait_until "$timeout_s" "no paired, ready health answer from $url" ready
control="$(sed -n 's/^sandbox control API: *\(http:\/\/[^ ]*\)$/\1/p' "$app_out" | head -n1)"
[ -n "$control" ] || fail "the app did not print the sandbox control URL"
log "agent at $url is ready"

# 5. One monitor: the main window, and no customer window (it is looked for every 2 s).
wait_until "$timeout_s" "no viewable main window \"Till Agent\"" main_viewable
sleep 5
customer_absent || fail "a customer window opened although there is only one monitor"
log "one monitor: main window only"

# 6. A second monitor is plugged in: the customer window opens on it, full size.
xrandr --addmode DUMMY1 "${mon_w}x${mon_h}"
xrandr --output DUMMY1 --mode "${mon_w}x${mon_h}" --right-of DUMMY0
[ "$(monitors)" = 2 ] || fail "the second monitor did not come up: $(xrandr --listmonitors)"
log "second monitor: $(xrandr --listmonitors | sed -n 's/^ *1: //p')"
wait_until "$timeout_s" "no viewable customer window after the second monitor came up" customer_viewable
read -r cx cy cw ch _ < <(geometry "$(window_id "$customer_title_tail")")
[ "$cx $cy $cw $ch" = "$mon_w 0 $mon_w $mon_h" ] ||
  fail "the customer window is at ${cw}x${ch}+${cx}+${cy}, not covering the second monitor (${mon_w}x${mon_h}+${mon_w}+0)"
read -r mx my mw mh _ < <(geometry "$(window_id "Till Agent")")
[ "$mx" -ge 0 ] && [ $((mx + mw)) -le "$mon_w" ] && [ "$my" -ge 0 ] && [ $((my + mh)) -le "$mon_h" ] ||
  fail "the main window (${mw}x${mh}+${mx}+${my}) is not on the first monitor"
log "customer window ${cw}x${ch}+${cx}+${cy} on the second monitor; main window ${mw}x${mh}+${mx}+${my} on the first"

# 7. The POS starts a payment with a cart: the second monitor shows its QR code.
init="$(curl -sf --max-time 30 -X POST "$url/api/transactions/init" -H 'Content-Type: application/json' -d '{
  "amount": 1250, "currency": "EUR", "posData": {"orderId": "CD-1"},
  "products": [{"name": "Café crème", "quantity": 2, "amount": 300}, {"name": "Croissant", "quantity": 1, "amount": 650}]
}')" || fail "the payment could not be started"
number="$(printf '%s' "$init" | json 'j["TransactionNumber"]')"
qr_url="$(printf '%s' "$init" | json '(j.get("transactionPage") or {}).get("qrURL")')"
[ -n "$number" ] && [ -n "$qr_url" ] || fail "no transaction number or QR URL in: $init"
qr_shown() { [ "$(qr_on_second)" = "$qr_url" ]; }
wait_until "$timeout_s" "the second monitor does not show the payment's QR code ($qr_url)" qr_shown
sleep 1 # the cart and total render with the QR; let the page settle before the picture
mkdir -p "$(dirname "$out")"
shot "$out" || fail "cannot take the screenshot"
log "payment $number: its QR is on the second monitor; screenshot $out"

# 8. The customer pays: the outcome replaces the QR on the second monitor.
curl -sf --max-time 30 -X POST "$control/transactions/$number/pay" -H 'Content-Type: application/json' \
  -d '{"card":"4111111111111111"}' >/dev/null || fail "the sandbox could not pay $number"
approved_shown() {
  [ -z "$(qr_on_second)" ] && [ "$(ok_pixels)" -ge 5000 ]
}
wait_until "$timeout_s" "the second monitor does not show the approved outcome" approved_shown
status="$(curl -sf "$url/api/agent/transactions/$number" | json 'j.get("status")')"
[ "$status" = 5 ] || fail "the payment is not approved in the agent (status $status)"
sleep 1
shot "$out_approved" || fail "cannot take the screenshot"
log "approved: the outcome is on the second monitor; screenshot $out_approved"

# 9. Settings: off closes the customer window, second_screen opens it again.
printf '2468\n' | "$agent_cli" manager set-pin --sandbox --data-dir "$work/data" --config "$work/config.toml" >/dev/null ||
  fail "cannot set the manager PIN"
login="$(curl -sf -X POST "$url/api/agent/manager/login" -H 'Content-Type: application/json' -d '{"pin":"2468"}')" ||
  fail "manager login failed"
token="$(printf '%s' "$login" | json 'j["token"]')"
display() {
  curl -sf -X POST "$url/api/agent/display" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"customerDisplay\":\"$1\"}" >/dev/null || fail "cannot set the customer display to $1"
}
display off
wait_until "$timeout_s" "the customer window is still open with the display set to off" customer_absent
main_viewable || fail "the main window went away with the customer display"
log "display off: customer window closed, main window still up"
display second_screen
wait_until "$timeout_s" "the customer window did not come back with second_screen" customer_viewable
log "display second_screen: customer window back"

# 10. The second monitor is unplugged: the customer window closes.
xrandr --output DUMMY1 --off
wait_until "$timeout_s" "the customer window stayed open after the second monitor went away" customer_absent
log "second monitor gone: customer window closed"

# 11. A clean stop.
kill -TERM "$app_pid"
rc=0
for _ in $(seq 1 75); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$app_pid" 2>/dev/null && fail "the app did not stop within 15 s of SIGTERM"
wait "$app_pid" || rc=$?
pid="$app_pid"
app_pid=""
stop_group "$pid"
[ "$rc" = 0 ] || fail "the app exited with status $rc after SIGTERM"
log "ok"
