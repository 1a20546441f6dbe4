#!/usr/bin/env bash
# Real-browser tests of the web page (GET /): headless Debian Chromium driven by
# Selenium through chromedriver, against the real ocrbox binary.
#
#   scripts/browser-test.sh [PYTEST ARGS...]      e.g. -k no_credits, -x
#
# Needs: apt-get install chromium chromium-driver python3-venv
# (/usr/bin/chromium, /usr/bin/chromedriver). Creates a venv with
# tests/browser/requirements.txt in target/browser-venv on first use.
#
# Starts `ocrbox serve` on a free loopback port with a fresh database in a temp
# dir, creates a key with 20 solves and one with 0, runs pytest on
# tests/browser, stops the server and removes the temp dir. Exit code: pytest's.
#
# Environment:
#   OCRBOX          binary (default target/release/ocrbox)
#   OCRBOX_SHOTS    screenshot folder (default target/browser-shots)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${OCRBOX:-$root/target/release/ocrbox}"
venv="$root/target/browser-venv"
req="$root/tests/browser/requirements.txt"
export OCRBOX_SHOTS="${OCRBOX_SHOTS:-$root/target/browser-shots}"

say() { echo "browser-test: $*" >&2; }
[ -x "$bin" ] || { say "no binary $bin (cargo build --release)"; exit 2; }
for t in chromium chromedriver; do
  command -v "$t" >/dev/null || { say "$t missing (apt-get install chromium chromium-driver)"; exit 2; }
done

# shellcheck source=scripts/lib/testenv.sh
. "$root/scripts/lib/testenv.sh"
# Python venv with pinned selenium + pytest.
pinned_venv "$venv" "$req"

scratch  # $work, and the server in $server stopped at exit


db="$work/db.redb"
key=$("$bin" keys add --db "$db" --solves 20 --name browser)
key_empty=$("$bin" keys add --db "$db" --solves 0 --name browser-empty)

# --task-ttl: results must outlive a slow read on a loaded 2-core machine (default 30 s).
"$bin" serve --listen 127.0.0.1:0 --db "$db" --workers 2 --task-ttl 10m >"$work/serve.log" 2>&1 &
server=$!
addr=$(addr_of "$work/serve.log" "listening on" 120) || { say "server did not start"; cat "$work/serve.log" >&2; exit 2; }
url="http://$addr"
say "server $url ($bin)"


mkdir -p "$OCRBOX_SHOTS"
rc=0
OCRBOX_URL="$url" OCRBOX_KEY="$key" OCRBOX_KEY_EMPTY="$key_empty" PYTHONDONTWRITEBYTECODE=1 \
  "$venv/bin/python" -m pytest -p no:cacheprovider -v tests/browser "$@" || rc=$?
if [ "$rc" != 0 ]; then
  say "pytest exit $rc; server log tail:"
  tail -20 "$work/serve.log" >&2
fi
say "screenshots in $OCRBOX_SHOTS"
exit "$rc"
