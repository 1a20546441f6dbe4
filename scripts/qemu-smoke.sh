#!/usr/bin/env bash
# Smoke test of a release binary, under qemu-user when it is for another CPU.
#
#   scripts/qemu-smoke.sh [BINARY]
#
# BINARY defaults to the aarch64 musl release build (target/dist/, else
# target/aarch64-unknown-linux-musl/{dist,release}/). An ARM binary is run with
# qemu-aarch64 / qemu-arm (Debian: qemu-user); a binary for this machine runs
# natively, so the same test covers the x86_64 build.
#
# Checks: `--version` names the target and the models; `ocr IMAGE` prints the
# expected text; `keys add` makes a key; `serve` answers /api/balance and a full
# /api/ocr/solve -> /api/ocr/result round trip with the right text, and charges
# one credit. Prints "measure:" lines: start-to-first-answer time, RSS idle and
# after OCR (under qemu these are the emulator's: times are emulated, RSS
# includes qemu's own memory).
#
# Environment:
#   SMOKE_IMAGE, SMOKE_EXPECT  image and a substring its text must contain
#                              (default: tests/fixtures/line_001.png)
#   SMOKE_PORT                 port on 127.0.0.1 (default: random 20000-39999)
#   SMOKE_TIMEOUT              seconds to wait for start-up / a result (default 600: emulated PP-OCRv6 reads a line in ~2 min)
#   RUST_LIB_BACKTRACE         default 0 (std::backtrace off). With RUST_BACKTRACE=1 inherited from a
#                              developer's shell, every error tract makes while building a plan
#                              (thousands per model shape) captures a backtrace, which on musl
#                              costs ~0.2 ms each (scripts/README.md) and would skew the times.
set -euo pipefail
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"

root="$(cd "$(dirname "$0")/.." && pwd)"
tdir="${CARGO_TARGET_DIR:-$root/target}"
bin="${1:-}"
if [ -z "$bin" ]; then
  for c in "$tdir/dist/ocrbox-aarch64-unknown-linux-musl" "$tdir/aarch64-unknown-linux-musl/dist/ocrbox" \
           "$tdir/aarch64-unknown-linux-musl/release/ocrbox"; do
    if [ -f "$c" ]; then bin="$c"; break; fi
  done
fi
[ -n "$bin" ] && [ -f "$bin" ] || { echo "qemu-smoke: no binary (build: scripts/build-release.sh aarch64-unknown-linux-musl)" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

image="${SMOKE_IMAGE:-$root/tests/fixtures/line_001.png}"
expect="${SMOKE_EXPECT:-fix memory leak}"
port="${SMOKE_PORT:-$((20000 + RANDOM % 20000))}"
timeout="${SMOKE_TIMEOUT:-600}"
[ -f "$image" ] || { echo "qemu-smoke: no image $image" >&2; exit 1; }

# Pick the runner from the binary's architecture.
desc=$(file -b "$bin")
host=$(uname -m)
runner=()
case "$desc" in
  *"ARM aarch64"*) [ "$host" = aarch64 ] || runner=(qemu-aarch64) ;;
  *"ARM,"*) case "$host" in arm*) ;; *) runner=(qemu-arm) ;; esac ;;
esac
if [ ${#runner[@]} -gt 0 ]; then
  command -v "${runner[0]}" >/dev/null || { echo "qemu-smoke: ${runner[0]} missing (apt-get install qemu-user)" >&2; exit 1; }
fi
run() { "${runner[@]}" "$bin" "$@"; }

echo "qemu-smoke: $bin"
echo "qemu-smoke: $desc"
echo "qemu-smoke: runner: ${runner[*]:-native}; image: $image; expect: '$expect'"
echo "qemu-smoke: RUST_BACKTRACE=${RUST_BACKTRACE:-unset} RUST_LIB_BACKTRACE=$RUST_LIB_BACKTRACE"

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "qemu-smoke: FAIL: $*" >&2; [ -f "$work/serve.log" ] && tail -20 "$work/serve.log" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
json_str() { sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p"; }
json_num() { sed -n "s/.*\"$1\" *: *\\([0-9.]*\\).*/\\1/p"; }

# 1. --version
ver=$(run --version)
echo "$ver" | sed 's/^/    /'
case "$ver" in *linux-musl*) ;; *) fail "--version does not name a musl target" ;; esac
case "$ver" in *"models:"*) ;; *) fail "--version does not list the models" ;; esac

# 2. ocr on the command line
t0=$(now)
if [ -x /usr/bin/time ]; then
  text=$(/usr/bin/time -f "%M" -o "$work/ocr.time" "${runner[@]}" "$bin" ocr "$image") || fail "ocr exited non-zero"
else
  text=$(run ocr "$image") || fail "ocr exited non-zero"
fi
t1=$(now)
cli_s=$(elapsed "$t0" "$t1")
cli_kb=$(cat "$work/ocr.time" 2>/dev/null || echo "?")
echo "    ocr: '$text' ($cli_s s)"
grep -qiF -- "$expect" <<<"$text" || fail "ocr output lacks '$expect'"

# 3. a key for the server
db="$work/ocrbox.redb"
# `keys add` prints the new key alone on stdout (what it says goes to stderr).
keyout=$(run keys add --solves 5 --db "$db" 2>"$work/keys.err") || fail "keys add: $(cat "$work/keys.err")"
key=$(tail -n 1 <<<"$keyout" | tr -d '[:space:]')
[ -n "$key" ] || fail "no key printed by keys add"
echo "    key: ${key:0:6}..."

# 4. serve: time to the first answered request
base="http://127.0.0.1:$port"
t0=$(now)
# Emulated, one reading takes minutes (PP-OCRv6 small det + rec under qemu: ~110 s for a line
# from the CLI): keep the task alive well past that.
"${runner[@]}" "$bin" serve --listen "127.0.0.1:$port" --db "$db" --task-ttl 15m >"$work/serve.log" 2>&1 &
server=$!
balance=""
while :; do
  if balance=$(curl -fsS "$base/api/balance?api=$key" 2>/dev/null); then break; fi
  kill -0 "$server" 2>/dev/null || fail "server exited"
  [ "$(elapsed "$t0" "$(now)" | cut -d. -f1)" -lt "$timeout" ] || fail "server not answering after ${timeout}s"
  sleep 0.05
done
t1=$(now)
start_s=$(elapsed "$t0" "$t1")
sleep 1
idle_kb=$(rss_kb "$server")
echo "    balance: $balance"
[ "$(json_str status <<<"$balance")" = ok ] || fail "balance status"
[ "$(json_num solves <<<"$balance")" = 5 ] || fail "balance is not 5 solves"

# 5. solve -> result
t0=$(now)
solve=$(curl -fsS -F "image=@$image" "$base/api/ocr/solve?api=$key") || fail "solve request"
echo "    solve: $solve"
task=$(json_str task_id <<<"$solve")
[ -n "$task" ] || fail "no task_id"
while :; do
  res=$(curl -fsS "$base/api/ocr/result/$task?api=$key") || fail "result request"
  [ "$(json_str result <<<"$res")" = in_process ] || break
  [ "$(elapsed "$t0" "$(now)" | cut -d. -f1)" -lt "$timeout" ] || fail "no result after ${timeout}s"
  sleep 0.2
done
t1=$(now)
echo "    result: $res"
[ "$(json_str status <<<"$res")" = ok ] || fail "result status"
grep -qiF -- "$expect" <<<"$(json_str result <<<"$res")" || fail "result lacks '$expect'"
ocr_kb=$(rss_kb "$server")
peak_kb=$(hwm_kb "$server")
balance=$(curl -fsS "$base/api/balance?api=$key") || fail "balance request"
[ "$(json_num solves <<<"$balance")" = 4 ] || fail "a solve did not cost one credit: $balance"

size=$(stat -c %s "$bin")
echo "measure: binary $(basename "$bin"): ${size} bytes"
echo "measure: start to first answered request: ${start_s} s${runner:+ (emulated)}"
echo "measure: RSS idle: ${idle_kb} KiB; after OCR: ${ocr_kb} KiB; peak: ${peak_kb} KiB${runner:+ (qemu process)}"
echo "measure: CLI 'ocr $(basename "$image")': ${cli_s} s, peak RSS ${cli_kb} KiB${runner:+ (emulated)}"
echo "measure: solve->result round trip: $(elapsed "$t0" "$t1") s${runner:+ (emulated)}"
echo "qemu-smoke: PASS"
