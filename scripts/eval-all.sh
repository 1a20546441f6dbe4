#!/usr/bin/env bash
# Usage: scripts/eval-all.sh [-b BINARY] [-- EXTRA EVAL FLAGS...]
# Runs `ocrbox eval` on every dev set of ../shared/eval (lines and pages) with the right
# comparison (SROIE case-folded) and prints one table row per set: CER %, word accuracy %,
# exact match %, seconds. EXTRA flags go to every `ocrbox eval` (e.g. --det small, --threads 1).
# Env: EVAL (../shared/eval, the shared/ folder beside the repository), OCRBOX (target/release/ocrbox).
set -euo pipefail
cd "$(dirname "$0")/.."
EVAL=${EVAL:-$(pwd)/../shared/eval}
OCRBOX=${OCRBOX:-target/release/ocrbox}
if [ "${1:-}" = -b ]; then OCRBOX=$2; shift 2; fi
[ "${1:-}" = -- ] && shift
extra=("$@")

sets=(
  "rendered lines|rendered-dev/labels.tsv|"
  "rendered pages|rendered-dev/pages.tsv|"
  "multilingual lines|multilingual-dev/labels.tsv|"
  "multilingual pages|multilingual-dev/pages.tsv|"
  "sroie lines|sroie_lines-dev/labels.tsv|--ignore-case"
  "sroie pages|sroie_pages-dev/labels.tsv|--ignore-case"
  "captcha digits|captchacracker_digits-dev/labels.tsv|"
  "amazon captcha|amazon_captcha-dev/labels.tsv|"
)
printf '| %-18s | %7s | %7s | %7s | %6s |\n' set "CER %" "word %" "exact %" "s"
printf '|%s|\n' "--------------------|---------|---------|---------|--------"
for row in "${sets[@]}"; do
  IFS='|' read -r name tsv flags <<<"$row"
  [ -f "$EVAL/$tsv" ] || continue
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  out=$("$OCRBOX" eval "$EVAL/$tsv" $flags --worst 0 "${extra[@]}")
  t1=$(date +%s.%N)
  cer=$(sed -n 's/^CER *\([0-9.]*\) %/\1/p' <<<"$out")
  word=$(sed -n 's/^word accuracy *\([0-9.-]*\) %/\1/p' <<<"$out")
  exact=$(sed -n 's/^exact match *\([0-9.]*\) %/\1/p' <<<"$out")
  printf '| %-18s | %7s | %7s | %7s | %6.1f |\n' "$name" "$cer" "$word" "$exact" "$(awk "BEGIN{print $t1 - $t0}")"
done
