#!/usr/bin/env bash
# Measure the release binaries (scripts/README.md, "Release binaries"): size, time from
# start to the first answered request, RSS idle and after the OCR of a page,
# CLI OCR time. Runs scripts/qemu-smoke.sh on each binary with a whole page.
#
#   scripts/measure-release.sh [BINARY...]
#
# BINARY defaults to target/dist/ocrbox-{x86_64,aarch64}-unknown-linux-musl
# (scripts/build-release.sh). The aarch64 binary runs under qemu-aarch64: its
# times are emulated (tens of times slower than a real Pi) and its RSS is the
# qemu process's, which includes the emulator's code cache.
# MEASURE_IMAGE / MEASURE_EXPECT: the page and a substring of its text
# (default: tests/fixtures/page_0.png).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tdir="${CARGO_TARGET_DIR:-$root/target}"
[ $# -gt 0 ] || set -- "$tdir/dist/ocrbox-x86_64-unknown-linux-musl" "$tdir/dist/ocrbox-aarch64-unknown-linux-musl"
export SMOKE_IMAGE="${MEASURE_IMAGE:-$root/tests/fixtures/page_0.png}"
export SMOKE_EXPECT="${MEASURE_EXPECT:-write-protect}"
export SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-1800}"
# A page under qemu takes minutes; the default 30 s task lifetime would expire
# the task before its result is read.
export OCRBOX_TASK_TTL="${OCRBOX_TASK_TTL:-30m}"
echo "machine: $(nproc) cores, $(uname -m), $(awk '/model name/ { $1=$2=$3=""; print; exit }' /proc/cpuinfo)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews times)"
# qemu-smoke.sh sets RUST_LIB_BACKTRACE=0 unless given: the service's own environment has no
# RUST_BACKTRACE, and with it every plan build captures thousands of backtraces.
echo "env: RUST_BACKTRACE=${RUST_BACKTRACE:-unset} RUST_LIB_BACKTRACE=${RUST_LIB_BACKTRACE:-0 (qemu-smoke default)}"
for b in "$@"; do
  echo "=== $(basename "$b")"
  "$root/scripts/qemu-smoke.sh" "$b" | grep -E '^(measure|qemu-smoke):'
done
