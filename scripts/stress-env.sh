# shellcheck shell=bash
# Sourced by crash-test.sh, flood.sh and soak.sh after their options are parsed: checks the
# binary, makes a temp dir ($tmp) that is removed, with any server left in it (stresslib.py
# writes $tmp/<name>.pid for each server it starts), when the script exits, and points $bin
# at a copy of the binary in it.
#
# Fleet mode (the caller sets fleet=1 before sourcing): also starts a throwaway PostgreSQL
# (Debian's /usr/lib/postgresql/*/bin, as the `postgres` user when run as root; data in
# $tmp/pg, 127.0.0.1 on a free port, trust auth, PostgreSQL's default durability), makes a
# role and database `ocrbox`, and exports for stresslib.py:
#   STRESS_LEDGER   postgres://ocrbox@127.0.0.1:PORT/ocrbox  (what the boxes get as --ledger)
#   STRESS_PSQL     the psql binary;  STRESS_PGDATA  the data directory (postmaster.pid)
# The EXIT trap stops PostgreSQL (pg_ctl -m immediate) before removing $tmp.
[ -x "$bin" ] || { echo "no binary $bin (cargo build --release --locked)" >&2; exit 2; }
tmp=$(mktemp -d)
pgdata="" pgbin=""
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local f
    for f in "$tmp"/*.pid; do
        if [ -f "$f" ]; then kill -9 "$(cat "$f")" 2>/dev/null || true; fi
    done
    if [ -n "$pgdata" ] && [ -f "$pgdata/postmaster.pid" ]; then
        as_pg "$pgbin/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A copy, so a rebuild during the run does not change the server under test (nor a restart).
cp "$bin" "$tmp/ocrbox"
bin="$tmp/ocrbox"

if [ "${fleet:-0}" = 1 ]; then
    pgbin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null \
        | sort -V | tail -1)
    if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
        echo "fleet mode needs the PostgreSQL server (apt-get install postgresql)" >&2
        exit 2
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        echo "fleet mode as root needs the postgres user (apt-get install postgresql)" >&2
        exit 2
    fi
    chmod 755 "$tmp"   # the postgres user reaches $tmp/pg
    mkdir "$tmp/pg"
    [ "$(id -u)" = 0 ] && chown postgres: "$tmp/pg"
    pgdata="$tmp/pg/data"
    pgport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust --no-locale -E UTF8 --no-sync \
        >"$tmp/pg/initdb.log" 2>&1 || { cat "$tmp/pg/initdb.log" >&2; exit 2; }
    cat >>"$pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pgport
unix_socket_directories = '$tmp/pg'
max_connections = 200
EOF
    as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$tmp/pg/log" -w start >/dev/null \
        || { tail -n 20 "$tmp/pg/log" >&2; exit 2; }
    "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pgport" -U postgres -d postgres \
        -c "CREATE ROLE ocrbox LOGIN" -c "CREATE DATABASE ocrbox OWNER ocrbox"
    export STRESS_LEDGER="postgres://ocrbox@127.0.0.1:$pgport/ocrbox"
    export STRESS_PSQL="$pgbin/psql" STRESS_PGDATA="$pgdata"
fi
