#!/usr/bin/env bash
# The packaged unit under a real systemd: after a kill -9 of the agent, systemd starts it again
# (Restart=always) and the journal is intact (the same last transaction before and after).
#
#   scripts/systemd-restart-check.sh ROOT TOKEN
#
# ROOT is a root the headless .deb was installed into with `dpkg --root` (scripts/package-check.sh
# does that), TOKEN the POS token of its journal. Needs root.
#
# This machine's PID 1 is not systemd, so the check boots systemd 252 as PID 1 of a private PID and
# mount namespace (`unshare`), as a container manager would. Inside that namespace only:
#   - /run is a fresh tmpfs holding the unit exactly as packaged, plus one drop-in (below);
#   - /usr/bin and /etc are read-only overlays that add the installed package's binary, its
#     configuration and its `till-agent` user to this machine's own;
#   - /var/lib is an overlay whose writes land in a temporary directory, seeded with the installed
#     root's state, so the journal can be read from outside and nothing of this machine changes.
# The drop-in changes no restart or sandboxing setting. It only:
#   - lets the unit start without the rest of a boot (DefaultDependencies=no; a booted till has those);
#   - runs the agent against its embedded sandbox on a free port (`run --sandbox --listen`);
#   - writes its output to a file, as there is no journald here.
set -euo pipefail
R="${1:?usage: systemd-restart-check.sh ROOT TOKEN}"
token="${2:?usage: systemd-restart-check.sh ROOT TOKEN}"
[ "$(id -u)" = 0 ] || { echo "systemd-restart-check: needs root" >&2; exit 1; }
[ -x /lib/systemd/systemd ] || { echo "systemd-restart-check: FAILED: /lib/systemd/systemd is missing (apt install systemd)" >&2; exit 1; }
[ -f "$R/lib/systemd/system/till-agent.service" ] || { echo "systemd-restart-check: FAILED: no till-agent.service in $R" >&2; exit 1; }

# A machine that cannot make namespaces (a container without CAP_SYS_ADMIN) cannot run this check;
# say so loudly rather than fail the package check for a reason that is not the package's.
if ! unshare --pid --fork --mount --propagation private true 2>/dev/null; then
  echo "   SKIPPED: this machine cannot create PID and mount namespaces (unshare), so systemd cannot run as PID 1 here"
  exit 0
fi

t=$(mktemp -d)
chmod 755 "$t"
init_pid=""
cleanup() {
  # Killing a PID namespace's init kills everything in it.
  if [ -n "$init_pid" ]; then kill -9 "$init_pid" 2>/dev/null || true; fi
  for _ in $(seq 1 50); do pgrep -f "^/usr/bin/till-agent run --sandbox --listen 127.0.0.1:$port" >/dev/null || break; sleep 0.1; done
  rm -rf "$t"
}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap cleanup EXIT
fail() {
  echo "systemd-restart-check: FAILED: $*" >&2
  echo "--- systemd" >&2; tail -n 40 "$t/systemd.log" >&2 2>/dev/null || true
  echo "--- agent" >&2; tail -n 40 "$t/agent.log" >&2 2>/dev/null || true
  exit 1
}
url="http://127.0.0.1:$port"

# What the namespace adds to /etc and /var/lib.
mkdir -p "$t/etc" "$t/varlib-up" "$t/varlib-work" "$t/run"
cat /etc/passwd > "$t/etc/passwd"; grep '^till-agent:' "$R/etc/passwd" >> "$t/etc/passwd"
cat /etc/group > "$t/etc/group"; grep '^till-agent:' "$R/etc/group" >> "$t/etc/group"
cp -a "$R/var/lib/till-agent" "$t/varlib-up/till-agent"
cp "$R/lib/systemd/system/till-agent.service" "$t/run/till-agent.service"
mkdir -p "$t/run/till-agent.service.d"
cat > "$t/run/till-agent.service.d/check.conf" <<EOF
[Unit]
DefaultDependencies=no
[Service]
ExecStart=
ExecStart=/usr/bin/till-agent run --sandbox --listen 127.0.0.1:$port
StandardOutput=append:$t/agent.log
StandardError=append:$t/agent.log
EOF
cat > "$t/run/till-check.target" <<EOF
[Unit]
Description=Till Agent restart check
DefaultDependencies=no
Wants=till-agent.service
EOF

cat > "$t/boot.sh" <<EOF
set -e
mount -t proc proc /proc
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/systemd/system
cp -a "$t/run/." /run/systemd/system/
mount -t overlay overlay -o "lowerdir=$R/usr/bin:/usr/bin" /usr/bin
mount -t overlay overlay -o "lowerdir=$t/etc:$R/etc:/etc" /etc
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$t/varlib-up,workdir=$t/varlib-work" /var/lib
export container=till-agent-check
exec /lib/systemd/systemd --system --unit=till-check.target --log-target=console --log-level=notice
EOF
setsid unshare --pid --fork --mount --propagation private bash "$t/boot.sh" > "$t/systemd.log" 2>&1 < /dev/null &
for _ in $(seq 1 100); do
  init_pid=$(pgrep -f -- '--unit=till-check.target' | while read -r p; do [ "$(ps -o comm= -p "$p")" = systemd ] && echo "$p"; done | head -1 || true)
  [ -n "$init_pid" ] && break
  sleep 0.1
done
[ -n "$init_pid" ] || fail "systemd did not start"

agent_pid() { pgrep -f "^/usr/bin/till-agent run --sandbox --listen 127.0.0.1:$port" | head -1 || true; }
wait_healthy() {
  for _ in $(seq 1 300); do
    curl -sf "$url/api/agent/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
wait_healthy || fail "the agent did not come up under systemd"
pid1=$(agent_pid)
[ -n "$pid1" ] || fail "no agent process"
# The service really runs as the package's user, sandboxed by systemd.
[ "$(ps -o user= -p "$pid1")" = till-agent ] || [ "$(ps -o uid= -p "$pid1" | tr -d ' ')" = "$(awk -F: '$1 == "till-agent" { print $3 }' "$R/etc/passwd")" ] \
  || fail "the agent does not run as till-agent: $(ps -o user=,uid= -p "$pid1")"
[ "$(awk '/^NoNewPrivs/ { print $2 }' "/proc/$pid1/status")" = 1 ] || fail "NoNewPrivileges is not in effect"

number=$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"amount": 1250, "isCent": true, "currency": "USD", "timeOut": 600, "posData": {"orderId": "SYSTEMD-1"}}' \
  "$url/api/transactions/init" | python3 -c 'import json,sys; print(json.load(sys.stdin)["TransactionNumber"])') \
  || fail "init under systemd"
last_before=$(curl -sf "$url/api/transactions/last" | python3 -c 'import json,sys; print(json.load(sys.stdin)["TransactionNumber"])')
[ "$last_before" = "$number" ] || fail "/last before: $last_before, expected $number"

kill -9 "$pid1"
restarted=""
for _ in $(seq 1 150); do
  p=$(agent_pid)
  if [ -n "$p" ] && [ "$p" != "$pid1" ]; then restarted="$p"; break; fi
  sleep 0.1
done
[ -n "$restarted" ] || fail "systemd did not restart the agent within 15 s of the kill -9"
wait_healthy || fail "the restarted agent did not answer"
last_after=$(curl -sf "$url/api/transactions/last" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["TransactionNumber"], v["status"])')
[ "$last_after" = "$number 0" ] || fail "/last after the restart: '$last_after', expected '$number 0'"
restarts=$(nsenter -t "$init_pid" -m -p systemctl show till-agent.service -p NRestarts --value 2>/dev/null || echo "?")
[ "$restarts" = 1 ] || fail "systemd counts $restarts restarts, expected 1"
python3 -c "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); r=c.execute('PRAGMA integrity_check').fetchone()[0]; sys.exit(0 if r=='ok' else 1)" \
  "$t/varlib-up/till-agent/journal.sqlite3" || fail "journal integrity check"
echo "   pid $pid1 killed (SIGKILL), restarted by systemd as pid $restarted (NRestarts=$restarts); /last is still $number; journal integrity ok"
