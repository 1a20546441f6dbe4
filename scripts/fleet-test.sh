#!/usr/bin/env bash
# Fleet test: three `ocrbox serve --ledger postgres://…` boxes on one throwaway PostgreSQL,
# behind HAProxy (round robin, health check GET /healthz), driven over real HTTP by
# scripts/fleet_check.py:
#   a. the spec's flows through the balancer (submit on one box, result read on another,
#      balance/24h, 401, 402, wait= long-poll, credit and revoke seen by every box at once)
#   m. from one box to a fleet: `ledger copy` of a single box's redb file into an empty
#      PostgreSQL database, a box on it takes the old keys; `backup --ledger`, copy back
#   b. 300 concurrent submits on a key with 100 credits: exactly 100 charged
#   e. throughput: three boxes behind HAProxy vs one box alone (same client load)
#   c. kill -9 of a box mid-load: ledger audit, no task left in_process, box restarted
#   d. PostgreSQL stopped, then restarted, mid-load: 503 + Retry-After meanwhile, recovery
#      without restarting any box, ledger audit
#
#   scripts/fleet-test.sh [SCENARIOS]      # e.g. "a b"; default: a m b e c d
#
# Needs: Debian's postgresql (initdb, pg_ctl in /usr/lib/postgresql/*/bin) and haproxy,
# python3-venv. As root, PostgreSQL runs as the `postgres` user (runuser). Everything runs on
# 127.0.0.1 on free ports, in a temp dir removed on exit; the box, HAProxy and PostgreSQL logs'
# tails are printed when a check fails. The HAProxy config is packaging/haproxy/ocrbox.cfg with
# the test's addresses put in (bind and server lines only) after a small `global` section.
# Creates target/fleet-venv (scripts/fleet-requirements.txt: pinned requests) on first use.
# Exit code: 0 when every check passed.
#
# Environment:
#   OCRBOX_BIN      binary (default target/release/ocrbox); copied to the temp dir first, so a
#                   rebuild during the run does not change the boxes under test
#   FLEET_KEEP=1    keep the temp dir (logs, HAProxy config, PostgreSQL data) after the run
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
src_bin="${OCRBOX_BIN:-$root/target/release/ocrbox}"
venv="$root/target/fleet-venv"
req="$root/scripts/fleet-requirements.txt"
template="$root/packaging/haproxy/ocrbox.cfg"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(a m b e c d)

say() { echo "fleet-test: $*" >&2; }
[ -x "$src_bin" ] || { say "no binary $src_bin (cargo build --release)"; exit 2; }
"$src_bin" serve --help | grep -q -- '--ledger' || { say "$src_bin has no serve --ledger"; exit 2; }
# Debian installs haproxy in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
command -v haproxy >/dev/null || { say "haproxy missing (apt-get install haproxy)"; exit 2; }
pgbin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  say "PostgreSQL server missing (apt-get install postgresql)"; exit 2
fi

# shellcheck source=scripts/lib/testenv.sh
. "$root/scripts/lib/testenv.sh"
pinned_venv "$venv" "$req"

# As root, PostgreSQL refuses to run: its commands run as the `postgres` user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || { say "no postgres user (apt-get install postgresql)"; exit 2; }
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

work="$(mktemp -d /tmp/ocrbox-fleet.XXXXXX)"
chmod 755 "$work"   # the postgres user reaches $work/pg
haproxy_pid=""
pgdata="$work/pg/data"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$? i pid
  set +e   # clean up everything, whatever fails on the way
  [ -n "$haproxy_pid" ] && stop "$haproxy_pid"
  for i in 1 2 3; do
    # fleet_check.py restarts boxes itself (then they are not our children): wait by polling.
    pid=$(cat "$work/box$i/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  [ -f "$pgdata/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1
  if [ "$rc" != 0 ]; then
    for log in "$work"/box*/log; do
      [ -f "$log" ] || continue
      echo "----- $log: its last ERROR lines, then its last lines but the access log" >&2
      grep -E ' ERROR |panicked' "$log" | tail -n 20 >&2
      echo "-----" >&2
      grep -v ' ocrbox::access: ' "$log" | tail -n 15 >&2
    done
    for log in "$work/haproxy.log" "$work/pg/log"; do
      [ -f "$log" ] || continue
      echo "----- $log: last 20 lines" >&2
      tail -n 20 "$log" >&2
    done
  fi
  if [ "${FLEET_KEEP:-}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
  say "$([ "$rc" = 0 ] && echo passed || echo "FAILED (exit $rc)") in ${SECONDS}s"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bin="$work/ocrbox"
cp "$src_bin" "$bin"

# --- PostgreSQL: a throwaway cluster, loopback only, trust auth, no fsync (test data).
pgport=$(free_port)
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
as_pg "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust --no-locale -E UTF8 --no-sync >"$work/pg/initdb.log" 2>&1 \
  || { cat "$work/pg/initdb.log" >&2; exit 2; }
cat >>"$pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pgport
unix_socket_directories = '$work/pg'
fsync = off
full_page_writes = off
max_connections = 200
EOF
# pg_ctl for fleet_check.py's outage scenario (stop / start / restart -m fast).
as_pg_sh=""
[ "$(id -u)" = 0 ] && as_pg_sh="runuser -u postgres --"
cat >"$work/pgctl" <<EOF
#!/bin/sh
exec $as_pg_sh "$pgbin/pg_ctl" -D "$pgdata" -l "$work/pg/log" -w "\$@"
EOF
chmod +x "$work/pgctl"
"$work/pgctl" start >/dev/null
psql_super=("$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pgport" -U postgres -d postgres)
"${psql_super[@]}" -c "CREATE ROLE ocrbox LOGIN" -c "CREATE DATABASE ocrbox OWNER ocrbox" \
  -c "CREATE DATABASE ocrbox_copy OWNER ocrbox"
ledger="postgres://ocrbox@127.0.0.1:$pgport/ocrbox"
say "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pgport, ledger $ledger"

# --- three boxes, started at once (their schema migrations race on the empty database).
addrs=()
for i in 1 2 3; do
  port=$(free_port)
  mkdir -p "$work/box$i"   # the box's working dir: nothing relative lands in the repository
  # One argument per line: fleet_check.py restarts a killed box with exactly this command.
  printf '%s\n' "$bin" serve --ledger "$ledger" --listen "127.0.0.1:$port" --workers 1 \
    --task-ttl 30s >"$work/box$i/cmd"
  mapfile -t cmd <"$work/box$i/cmd"
  (cd "$work/box$i" && exec "${cmd[@]}") >"$work/box$i/log" 2>&1 &
  echo $! >"$work/box$i/pid"
  disown   # a box killed on purpose is no news; cleanup() stops them by pid
done
for i in 1 2 3; do
  addr=$(addr_of "$work/box$i/log" "listening on" 120) || { say "box$i did not start"; exit 1; }
  addrs+=("$addr")
done
say "boxes: box1 ${addrs[0]}, box2 ${addrs[1]}, box3 ${addrs[2]} ($src_bin, 1 worker each)"

# --- HAProxy: the packaged example with the test's addresses.
hport=$(free_port)
cfg="$work/haproxy.cfg"
{
  printf 'global\n    log stdout format raw local0 info\n'
  printf '    stats socket %s mode 600 level admin\n\n' "$work/haproxy.sock"
  sed -E -e "s|^([[:space:]]*bind) :8080\$|\\1 127.0.0.1:$hport|" \
    -e "s|^([[:space:]]*server box1) [^[:space:]]+|\\1 ${addrs[0]}|" \
    -e "s|^([[:space:]]*server box2) [^[:space:]]+|\\1 ${addrs[1]}|" \
    -e "s|^([[:space:]]*server box3) [^[:space:]]+|\\1 ${addrs[2]}|" "$template"
} >"$cfg"
if ! grep -q "bind 127.0.0.1:$hport\$" "$cfg" || grep -q "10\.0\.0\." "$cfg" \
  || [ "$(grep -c -E "server box[123] 127\.0\.0\.1:" "$cfg")" != 3 ]; then
  say "could not put the test's addresses into $template"; exit 1
fi
haproxy -c -q -f "$cfg" || { say "haproxy rejects $cfg"; exit 1; }
haproxy -db -f "$cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
say "HAProxy $(haproxy -v | awk 'NR == 1 {print $3}') on 127.0.0.1:$hport"

PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" "$root/scripts/fleet_check.py" \
  --haproxy "http://127.0.0.1:$hport" --stats-socket "$work/haproxy.sock" \
  --box "box1=${addrs[0]}" --box "box2=${addrs[1]}" --box "box3=${addrs[2]}" \
  --work "$work" --bin "$bin" --ledger "$ledger" --ledger-copy "${ledger}_copy" --psql "$pgbin/psql" --pgctl "$work/pgctl" \
  --fixtures "$root/tests/fixtures" --task-ttl 30 "${scenarios[@]}"

# No box may have panicked (errors are expected in the logs: a box killed, the database down).
if grep -n 'panicked' "$work"/box*/log >&2; then
  say "a box panicked (above)"
  exit 1
fi
