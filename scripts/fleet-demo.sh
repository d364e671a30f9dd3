#!/usr/bin/env bash
# A first look at the fleet server: a throwaway PostgreSQL cluster, `till-fleet`, and three
# sandbox tills in two stores that sell by themselves (the sandbox pays every payment), all on
# loopback. Ctrl-C stops everything and deletes the cluster.
#
#   bash scripts/fleet-demo.sh            # then open the printed dashboard URL with the printed token
#   FLEET_PORT=8700 bash scripts/fleet-demo.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh >/dev/null
cargo build --locked -p till-fleet -p till-agent
bin="${CARGO_TARGET_DIR:-target}/debug"

pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$pgbin" ] || pgbin="$(dirname "$(command -v initdb)")"
work="$(mktemp -d /tmp/till-fleet-demo.XXXXXX)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  # initdb refuses to run as root: the cluster belongs to the postgres user.
  chown postgres:postgres "$work"
  as_pg=(runuser -u postgres --)
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"${as_pg[@]}" "$pgbin/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
printf "listen_addresses = ''\nunix_socket_directories = '%s'\n" "$work" >> "$work/data/postgresql.auto.conf"
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w start >/dev/null
db="host=$work user=postgres dbname=postgres"

token="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TILL_FLEET_ADMIN_TOKEN="$token" "$bin/till-fleet" serve --database-url "$db" \
  --listen "127.0.0.1:${FLEET_PORT:-0}" > "$work/fleet.out" 2> "$work/fleet.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/fleet.out" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^till-fleet listening on //p' "$work/fleet.out")"
[ -n "$url" ] || { cat "$work/fleet.log"; exit 1; }

n=0
for store_till in "North:Till 1" "North:Till 2" "South:Till 1"; do
  n=$((n + 1))
  store="${store_till%%:*}"; till="${store_till#*:}"
  code="$("$bin/till-fleet" enrolment-code --store "$store" --database-url "$db")"
  dir="$work/till-$n"
  "$bin/till-agent" enrol --sandbox --data-dir "$dir" --fleet-url "$url" --code "$code" --till-name "$till"
  "$bin/till-agent" run --sandbox --autopilot-ms 1500 --data-dir "$dir" --listen 127.0.0.1:0 \
    > "$work/till-$n.out" 2> "$work/till-$n.log" &
  pids+=($!)
done

# Each till sells a few payments (the sandbox pays them after 1.5 s).
sleep 2
for n in 1 2 3; do
  agent="$(sed -n 's/^till-agent listening on //p' "$work/till-$n.out")"
  for i in 1 2 3; do
    curl -s -o /dev/null -X POST "$agent/api/transactions/init" -H 'Content-Type: application/json' \
      -d "{\"amount\":$((n * 1000 + i * 250)),\"isCent\":true,\"currency\":\"USD\",\"posData\":{\"orderId\":\"T$n-$i\"}}"
    sleep 2
  done
done

echo
echo "fleet dashboard: $url/"
echo "admin token:     $token"
echo "three tills in stores North and South are replicating; Ctrl-C stops everything."
wait "${pids[0]}"
