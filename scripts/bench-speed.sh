#!/usr/bin/env bash
# Usage: scripts/bench-speed.sh [-b BINARY] [-- EXTRA OCR FLAGS...]
# One-thread speed of ocrbox on the dev sets' pages and lines, the images the PP-OCRv6 peers
# were timed on (scripts/baselines-v6.md): all 23 pages (rendered, multilingual, SROIE) and
# every 10th line of each line set (74). Each image is read twice in one process and the second
# reading is timed (warm); prints the median total and per-stage ms for pages and for lines,
# then the cold time and peak RSS of a fresh process reading one page and one line.
# EXTRA flags go to `ocrbox ocr` (e.g. --det tiny).
# Env: EVAL (../shared/eval, the shared/ folder beside the repository), OCRBOX (target/release/ocrbox).
set -euo pipefail
cd "$(dirname "$0")/.."
EVAL=${EVAL:-$(pwd)/../shared/eval}
OCRBOX=${OCRBOX:-target/release/ocrbox}
if [ "${1:-}" = -b ]; then OCRBOX=$2; shift 2; fi
[ "${1:-}" = -- ] && shift
extra=("$@")
out=$(mktemp)
trap 'rm -f "$out"' EXIT

pages=("$EVAL"/rendered-dev/page_*.png "$EVAL"/multilingual-dev/*_page_*)
mapfile -t sroie < <(cut -f1 "$EVAL/sroie_pages-dev/labels.tsv" | sed "s|^|$EVAL/sroie_pages-dev/|")
pages+=("${sroie[@]}")
lines=()
for s in rendered-dev multilingual-dev sroie_lines-dev captchacracker_digits-dev amazon_captcha-dev; do
  mapfile -t l < <(cut -f1 "$EVAL/$s/labels.tsv" | awk 'NR % 10 == 1' | sed "s|^|$EVAL/$s/|")
  lines+=("${l[@]}")
done
twice=()
for i in "${pages[@]}" "${lines[@]}"; do twice+=("$i" "$i"); done
echo "ocrbox: ${#pages[@]} pages, ${#lines[@]} lines, one thread, second reading timed"
"$OCRBOX" ocr --json --threads 1 "${extra[@]}" "${twice[@]}" > "$out"
python3 - "$out" "${#pages[@]}" <<'PY'
import json, statistics, sys
seen, order = {}, []
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["file"] in seen:
        seen[o["file"]] = o
    else:
        seen[o["file"]] = None
        order.append(o["file"])
n_pages = int(sys.argv[2])
groups = {"page": [seen[f] for f in order[:n_pages]], "line": [seen[f] for f in order[n_pages:]]}
for name, runs in groups.items():
    med = lambda k: statistics.median(r["timings"][k] for r in runs)
    total = statistics.median(r["time_ms"] for r in runs)
    print(f"warm {name} ({len(runs)}): median {total:.0f} ms = decode {med('decode_ms'):.0f}"
          f" + detect {med('detect_ms'):.0f} + classify {med('classify_ms'):.0f}"
          f" + recognize {med('recognize_ms'):.0f}")
PY
for what in "page:$EVAL/rendered-dev/page_0.png" "line:$EVAL/rendered-dev/line_000.jpg"; do
  /usr/bin/time -f "cold ${what%%:*}: %e s, peak RSS %M KiB" \
    "$OCRBOX" ocr --threads 1 "${extra[@]}" "${what#*:}" > /dev/null
done
