#!/usr/bin/env bash
# Checks the headless .deb without a release build (CI, ~1 min): builds it from an already-built
# binary, runs lintian (no errors allowed), installs it with dpkg into a temporary root (the
# package's scripts run chrootless, honouring DPKG_ROOT), starts the agent from there as the
# package's service user, upgrades (journal migrated and kept), refuses a downgrade over a journal
# with a newer schema (journal untouched), removes (data kept) and purges (data gone), and rates
# the systemd unit with `systemd-analyze security --offline`. In between, the installed unit runs
# under a real systemd (scripts/systemd-restart-check.sh) and is restarted after a kill -9.
#
#   scripts/package-check.sh [BINARY]        # default target/debug/till-agent
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bin="${1:-target/debug/till-agent}"
start=$(date +%s)
# dpkg looks for ldconfig and start-stop-daemon on PATH, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
[ "$(id -u)" = 0 ] || { echo "package-check: needs root (dpkg --root, chown, setpriv)" >&2; exit 1; }

tmp=$(mktemp -d)
agent_pid=""
# The agent runs under a user-switching wrapper, whose pid is not the agent's: stop it by its path.
stop_agent() { if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi; pkill -f "$tmp/.*/usr/bin/till-agent" 2>/dev/null || true; agent_pid=""; }
cleanup() { stop_agent; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "package-check: FAILED: $*" >&2; exit 1; }

echo "-- building 0.1.0 and 0.1.1 from $bin"
bash scripts/package.sh --headless-only --fast --binary "$bin" --version 0.1.0 --out "$tmp/pkgs" >/dev/null
bash scripts/package.sh --headless-only --fast --binary "$bin" --version 0.1.1 --out "$tmp/pkgs" >/dev/null
deb0="$tmp/pkgs/till-agent_0.1.0_amd64.deb"; deb1="$tmp/pkgs/till-agent_0.1.1_amd64.deb"

echo "-- lintian"
lintian --fail-on error --allow-root "$deb0" || fail "lintian reported errors"

R="$tmp/root"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc"
: > "$R/var/lib/dpkg/status"
chmod 755 "$tmp" "$R"
dpkg_r() { dpkg --root="$R" --force-script-chrootless --force-depends --force-confold --log=/dev/null "$@"; }
installed() { dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Version}' till-agent 2>/dev/null; }

echo "-- install 0.1.0 into $R"
dpkg_r -i "$deb0" >/dev/null 2>&1 || fail "dpkg -i 0.1.0"
[ "$(installed)" = 0.1.0 ] || fail "not installed"
uid=$(awk -F: '$1 == "till-agent" { print $3 }' "$R/etc/passwd")
[ -n "$uid" ] || fail "no till-agent user in the root's passwd"
[ "$(stat -c '%u %a' "$R/var/lib/till-agent")" = "$uid 700" ] || fail "state dir owner/mode: $(stat -c '%u %a' "$R/var/lib/till-agent")"
[ -x "$R/usr/bin/till-agent" ] || fail "no till-agent on PATH"
[ -L "$R/etc/systemd/system/multi-user.target.wants/till-agent.service" ] || fail "service not enabled"
[ -L "$R/etc/systemd/system/multi-user.target.wants/till-agent-update.path" ] || fail "update path unit not enabled"
grep -q '^/etc/till-agent/config.toml$' "$R/var/lib/dpkg/info/till-agent.conffiles" || fail "config.toml is not a conffile"

as_user() { HOME="$R/var/lib/till-agent" setpriv --reuid="$uid" --regid="$uid" --clear-groups "$R/usr/bin/till-agent" "$@" \
  --config "$R/etc/till-agent/config.toml" --data-dir "$R/var/lib/till-agent"; }

echo "-- start the installed agent as the service user"
token=$(as_user token)
[ -n "$token" ] || fail "no POS token"
as_user run --sandbox --listen 127.0.0.1:0 > "$tmp/agent.out" 2> "$tmp/agent.err" &
agent_pid=$!
for _ in $(seq 1 300); do grep -q 'listening on' "$tmp/agent.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^till-agent listening on //p' "$tmp/agent.out" | head -1)
[ -n "$url" ] || { cat "$tmp/agent.err" >&2; fail "the installed agent did not start"; }
health=$(curl -sf "$url/api/agent/health") || fail "health"
echo "   $url: $(echo "$health" | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["version"], h["update"]["channel"], h["status"])')"
echo "$health" | grep -q '"version":"0.1.0"' || fail "health version: $health"
[ "$(stat -c %u "$R/var/lib/till-agent/journal.sqlite3")" = "$uid" ] || fail "journal not owned by the service user"
stop_agent

echo "-- under systemd: kill -9 of the service is followed by a restart, journal intact"
bash scripts/systemd-restart-check.sh "$R" "$token"

echo "-- upgrade to 0.1.1: journal migrated and kept"
out=$(dpkg_r -i "$deb1" 2>&1) || { echo "$out"; fail "dpkg -i 0.1.1"; }
echo "$out" | grep -q 'journal schema' || { echo "$out"; fail "upgrade did not migrate the journal"; }
[ "$(installed)" = 0.1.1 ] || fail "not upgraded"
[ "$(as_user token)" = "$token" ] || fail "the journal (POS token) did not survive the upgrade"

echo "-- downgrade over a journal of a newer schema is refused, journal untouched"
journal="$R/var/lib/till-agent/journal.sqlite3"
schema=$(as_user journal-schema)
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version=%d' % (int(sys.argv[2])+1)); c.commit()" "$journal" "$schema"
sum=$(sha256sum < "$journal")
if out=$(dpkg_r -i "$deb0" 2>&1); then fail "downgrade was not refused"; fi
echo "$out" | grep -q 'refusing to install 0.1.0' || { echo "$out"; fail "no clear refusal message"; }
[ "$(installed)" = 0.1.1 ] || fail "the refused downgrade changed the installed version"
[ "$(sha256sum < "$journal")" = "$sum" ] || fail "the refused downgrade changed the journal"
if out=$(as_user token 2>&1); then fail "the binary opened a newer journal"; fi
echo "$out" | grep -q 'newer than this Till Agent supports' || fail "the binary's refusal is not clear: $out"
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version=%d' % int(sys.argv[2])); c.commit()" "$journal" "$schema"

echo "-- remove keeps the data, purge deletes it"
dpkg_r -r till-agent >/dev/null 2>&1 || fail "dpkg -r"
[ -f "$journal" ] || fail "remove deleted the journal"
[ ! -e "$R/usr/bin/till-agent" ] || fail "remove left the binary"
dpkg_r -P till-agent >/dev/null 2>&1 || fail "dpkg -P"
[ ! -e "$R/var/lib/till-agent" ] || fail "purge kept the data"
[ ! -e "$R/etc/till-agent" ] || fail "purge kept the configuration"

echo "-- systemd-analyze security (offline)"
dpkg-deb -x "$deb0" "$tmp/x"
exposure=$(systemd-analyze security --offline=true "$tmp/x/lib/systemd/system/till-agent.service" 2>/dev/null \
  | sed -n 's/.*Overall exposure level for till-agent.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security gave no score"
echo "   exposure $exposure (0 = fully sandboxed, 10 = not at all)"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 2.0 else 1)" "$exposure" || fail "exposure $exposure > 2.0"

echo "package-check: all passed in $(( $(date +%s) - start )) s"
