# Sourced by crash-test.sh, flood.sh and soak.sh after their options are parsed: checks the
# binary and makes a temp dir ($tmp) that is removed, with any server left in it
# (stresslib.py writes $tmp/server.pid), when the script exits.
[ -x "$bin" ] || { echo "no binary $bin (cargo build --release --locked)" >&2; exit 2; }
tmp=$(mktemp -d)
cleanup() {
    [ -f "$tmp/server.pid" ] && kill -9 "$(cat "$tmp/server.pid")" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
