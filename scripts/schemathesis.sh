#!/usr/bin/env bash
# Schemathesis (https://schemathesis.io) against the real ocrbox binary, driven by the OpenAPI
# document the server serves at GET /api/openapi.json. Exits non-zero on any finding.
#
#   scripts/schemathesis.sh [SCHEMATHESIS RUN ARGS...]      e.g. --seed 123, -n 500
#
# Needs python3-venv. Creates target/schemathesis-venv with tests/schemathesis/requirements.txt
# (pinned schemathesis, openapi-spec-validator) from PyPI on first use.
#
# 1. Starts `ocrbox serve` on a free loopback port with a fresh database in a temp dir
#    (--max-upload 1MiB and --max-pages 2, so both 413s are reachable), reads "listening on
#    ADDR" and the first key it prints, credits that key 1,000,000 solves through the admin
#    socket (`ocrbox keys credit`) and adds a key with 0.
# 2. tests/schemathesis/check_states.py: the document is valid OpenAPI 3.1, its examples match
#    its schemas, and the answers random data cannot reach (a page in process and done with
#    details=1, a two-page TIFF, a failed task, 402, both 413s, ...) conform to it.
# 3. `schemathesis run` with the checks not_a_server_error, status_code_conformance,
#    content_type_conformance, response_schema_conformance, every phase (examples, coverage,
#    fuzzing, and stateful: solve -> result through the document's link), at most
#    SCHEMATHESIS_EXAMPLES examples per operation, the key in the X-API-Key header. It runs on
#    a copy of the served document with --url, because Schemathesis skips the operation that
#    serves its schema, and GET /api/openapi.json is one of ours.
# 4. The server must still answer /healthz, have logged no error or panic, and exit cleanly on
#    SIGTERM.
#
# Environment:
#   OCRBOX                 binary (default target/release/ocrbox)
#   SCHEMATHESIS_EXAMPLES  --max-examples per operation (default 200: about 1 minute here)
#   SCHEMATHESIS_REPORT    report directory (default target/schemathesis-report: JUnit, NDJSON)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${OCRBOX:-$root/target/release/ocrbox}"
venv="$root/target/schemathesis-venv"
req="$root/tests/schemathesis/requirements.txt"
examples="${SCHEMATHESIS_EXAMPLES:-200}"
report="${SCHEMATHESIS_REPORT:-$root/target/schemathesis-report}"
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

say() { echo "schemathesis: $*" >&2; }
[ -x "$bin" ] || { say "no binary $bin (cargo build --release)"; exit 2; }

# shellcheck source=scripts/lib/testenv.sh
. "$root/scripts/lib/testenv.sh"
# Python venv with the pinned tools.
pinned_venv "$venv" "$req"
say "$("$venv/bin/schemathesis" --version)"

scratch  # $work, and the server in $server stopped at exit


db="$work/db.redb"
"$bin" serve --listen 127.0.0.1:0 --db "$db" --workers 2 --max-upload 1MiB --max-pages 2 \
  >"$work/stdout" 2>"$work/serve.log" &
server=$!
addr=$(addr_of "$work/stdout" "listening on" 120) || { say "server did not start"; cat "$work/serve.log" >&2; exit 2; }
url="http://$addr"
# The first key: the line of 40 hex characters the server prints on an empty database.
key=$(grep -m1 -xE '[[:space:]]*[0-9a-f]{40}[[:space:]]*' "$work/stdout" | tr -d '[:space:]') \
  || { say "no first key in the server's output"; exit 2; }
"$bin" keys --db "$db" credit "$key" =1000000 >/dev/null
key_empty=$("$bin" keys --db "$db" add --solves 0 --name schemathesis-empty 2>/dev/null)
say "server $url ($bin)"

rc=0
say "states the fuzzing cannot reach (tests/schemathesis/check_states.py)"
OCRBOX_URL="$url" OCRBOX_KEY="$key" OCRBOX_KEY_EMPTY="$key_empty" PYTHONDONTWRITEBYTECODE=1 \
  "$venv/bin/python" tests/schemathesis/check_states.py || rc=$?

curl -sf "$url/api/openapi.json" -o "$work/openapi.json"
rm -rf "$report"
mkdir -p "$report"
started=$SECONDS
say "schemathesis run $url/api/openapi.json --max-examples $examples $*"
"$venv/bin/schemathesis" run "$work/openapi.json" --url "$url" \
  --checks "$checks" \
  --header "X-API-Key: $key" \
  --max-examples "$examples" \
  --request-timeout 40 \
  --generation-database none \
  --report junit,ndjson --report-dir "$report" \
  "$@" || rc=$?
say "schemathesis took $((SECONDS - started)) s; answers by operation and status:"
"$venv/bin/python" tests/schemathesis/tally.py "$report"/ndjson-*.ndjson >&2 || true

# The server survived it all, quietly.
if ! curl -sf "$url/healthz" >/dev/null; then
  say "FAIL: /healthz does not answer 200 after the run"; rc=1
fi
if grep -E ' (ERROR|WARN) |panicked' "$work/serve.log" >&2; then
  say "FAIL: the server logged the errors above"; rc=1
fi
kill "$server"
if ! wait "$server"; then
  say "FAIL: the server did not exit cleanly on SIGTERM"; rc=1
fi
server=""
if [ "$rc" != 0 ]; then
  say "FAILED (exit $rc); server log tail:"
  tail -20 "$work/serve.log" >&2
else
  say "no finding"
fi
exit "$rc"
