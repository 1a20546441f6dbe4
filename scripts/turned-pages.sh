#!/usr/bin/env bash
# Usage: scripts/turned-pages.sh [-b BINARY]
# Reads the dev page sets upright, turned a quarter clockwise, upside down and turned a quarter
# counter-clockwise (`ocrbox eval --turn`), and prints CER % per set and turn (SROIE
# case-folded). The pages' own labels are the truth: a turned page must read as the upright one,
# in the same order.
# Env: EVAL (../shared/eval, the shared/ folder beside the repository), OCRBOX (target/release/ocrbox).
set -euo pipefail
cd "$(dirname "$0")/.."
EVAL=${EVAL:-$(pwd)/../shared/eval}
OCRBOX=${OCRBOX:-target/release/ocrbox}
if [ "${1:-}" = -b ]; then OCRBOX=$2; shift 2; fi

sets=(
  "rendered pages|rendered-dev/pages.tsv|"
  "multilingual pages|multilingual-dev/pages.tsv|"
  "sroie pages|sroie_pages-dev/labels.tsv|--ignore-case"
)
printf '| %-18s | %8s | %8s | %8s | %8s |\n' set upright "90° cw" "180°" "90° ccw"
printf '|%s|\n' "--------------------|----------|----------|----------|----------"
for row in "${sets[@]}"; do
  IFS='|' read -r name tsv flags <<<"$row"
  [ -f "$EVAL/$tsv" ] || continue
  cells=()
  for turn in "" 90 180 270; do
    # shellcheck disable=SC2086
    out=$("$OCRBOX" eval "$EVAL/$tsv" $flags ${turn:+--turn $turn} --worst 0)
    cells+=("$(sed -n 's/^CER *\([0-9.]*\) %/\1/p' <<<"$out")")
  done
  printf '| %-18s | %8s | %8s | %8s | %8s |\n' "$name" "${cells[@]}"
done
