#!/usr/bin/env bash
# The metrics exposition through a real parser: starts the real ocrbox binary with
# --metrics-listen, reads one image and has one upload refused (402), then runs
# scripts/metrics-check.py, which parses GET /metrics with prometheus_client's own
# Prometheus-text and OpenMetrics parsers and checks the families, their types, that the
# counters moved, and that no key or key id appears.
#
#   scripts/metrics-test.sh
#
# Needs: python3-venv, curl. Creates a venv with scripts/metrics-requirements.txt (pinned
# prometheus-client) in target/metrics-venv on first use. Starts `ocrbox serve` on free
# loopback ports with a fresh database in a temp dir, stops it and removes the dir.
# Exit code: 0 when every check passed.
#
# Environment:
#   OCRBOX          binary (default target/release/ocrbox)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${OCRBOX:-$root/target/release/ocrbox}"
venv="$root/target/metrics-venv"
req="$root/scripts/metrics-requirements.txt"
image="$root/tests/fixtures/line_001.png"

say() { echo "metrics-test: $*" >&2; }
[ -x "$bin" ] || { say "no binary $bin (cargo build --release)"; exit 2; }
command -v curl >/dev/null || { say "curl missing"; exit 2; }

# shellcheck source=scripts/lib/testenv.sh
. "$root/scripts/lib/testenv.sh"
# Python venv with the pinned parser.
pinned_venv "$venv" "$req"

scratch  # $work, and the server in $server stopped at exit


db="$work/db.redb"
key=$("$bin" keys add --db "$db" --solves 5 --name metrics)
key_empty=$("$bin" keys add --db "$db" --solves 0 --name metrics-empty)

"$bin" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --db "$db" --workers 1 \
  --task-ttl 5m >"$work/serve.log" 2>&1 &
server=$!
api=$(addr_of "$work/serve.log" "listening on" 120) || { say "server did not start"; cat "$work/serve.log" >&2; exit 2; }
metrics=$(addr_of "$work/serve.log" "metrics on" 1) || { say "no 'metrics on ADDR' line"; cat "$work/serve.log" >&2; exit 1; }
say "API http://$api, metrics http://$metrics ($bin)"

py() { PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" "$@"; }
secrets=(--secret "$key" --secret "${key:0:8}" --secret "$key_empty" --secret "${key_empty:0:8}")

# Before any traffic: the families are there, and parse.
py scripts/metrics-check.py "http://$metrics" "${secrets[@]}"

# One image read to the end (long-poll), one upload refused for want of credits.
submitted=$(curl -sS -F "image=@$image" "http://$api/api/ocr/solve?api=$key")
task=$(py -c 'import json, sys; print(json.load(sys.stdin)["task_id"])' <<<"$submitted") \
  || { say "solve failed: $submitted"; exit 1; }
for _ in 1 2 3 4 5 6; do
  result=$(curl -sS "http://$api/api/ocr/result/$task?api=$key&wait=25")
  grep -q '"in_process"' <<<"$result" || break
done
grep -q '"status":"ok"' <<<"$result" || { say "no result: $result"; exit 1; }
say "read: $result"
code=$(curl -sS -o /dev/null -w '%{http_code}' -F "image=@$image" "http://$api/api/ocr/solve?api=$key_empty")
[ "$code" = 402 ] || { say "empty key got $code, wanted 402"; exit 1; }

py scripts/metrics-check.py "http://$metrics" "${secrets[@]}" --after-traffic
say "passed"
