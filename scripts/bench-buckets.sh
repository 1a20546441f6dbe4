#!/usr/bin/env bash
# Choose the recognition width buckets from measurements, not guesses.
#
#   scripts/bench-buckets.sh [IMAGE...]
#
# 1. `cargo bench --bench shapes -- rec` times the recogniser at each strip width (tract plan
#    build, median run, memory per plan).
# 2. `ocrbox ocr --json` reads IMAGE... (default: every image of ../shared/eval's dev sets) and
#    each line box gives the strip width the recogniser sees (48 × box width / box height).
# 3. For several candidate bucket lists it prints the mean recognition time per line (each line
#    padded up to its bucket, times interpolated from step 1), the plans needed, and the time
#    spent building them once: the trade-off between padding waste and plan count.
# SHAPES_TSV=FILE skips step 1 and uses a table printed by an earlier `cargo bench --bench shapes`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
eval_dir=${EVAL_DIR:-$here/../shared/eval}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -n "${SHAPES_TSV:-}" ]; then
    cp "$SHAPES_TSV" "$tmp/shapes.tsv"   # a table saved from an earlier run
else
    (cd "$here" && cargo bench --locked --bench shapes -- rec) | tee "$tmp/shapes.tsv"
fi
bin="$here/target/release/ocrbox"
[ -x "$bin" ] || (cd "$here" && cargo build --release --locked)
if [ $# -eq 0 ]; then
    mapfile -t images < <(find "$eval_dir" -type f \( -name '*.png' -o -name '*.jpg' \) | sort)
    set -- "${images[@]}"
fi
"$bin" ocr --json "$@" 2>/dev/null >"$tmp/ocr.jsonl" || true

python3 - "$tmp/shapes.tsv" "$tmp/ocr.jsonl" <<'PY'
import json, math, sys

rows = [l.split("\t") for l in open(sys.argv[1]) if l.startswith("rec\t")]
table = sorted((int(r[2]), float(r[3]), float(r[4])) for r in rows)  # width, build, run

def interp(w, col):
    for (w0, *a), (w1, *b) in zip(table, table[1:]):
        if w0 <= w <= w1:
            return a[col] + (b[col] - a[col]) * (w - w0) / (w1 - w0)
    return table[-1][1 + col] if w > table[-1][0] else table[0][1 + col]

widths = []
for line in open(sys.argv[2]):
    for l in json.loads(line).get("lines", []):
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = l["box"]
        w = max(math.dist((x0, y0), (x1, y1)), math.dist((x3, y3), (x2, y2)))
        h = max(math.dist((x0, y0), (x3, y3)), math.dist((x1, y1), (x2, y2)))
        if h >= 1.5 * w:
            w, h = h, w
        widths.append(max(1, math.ceil(48 * w / max(h, 1))))
print(f"\n{len(widths)} lines; strip widths: median {sorted(widths)[len(widths)//2]}, "
      f"max {max(widths)}, over 320: {sum(w > 320 for w in widths)}")

cands = {
    "current (320,480..3200)": [320, 480, 640, 800, 960, 1280, 1600, 2048, 2560, 3200],
    "one bucket (3200)": [3200],
    "doubling (320,640,1280,2560,3200)": [320, 640, 1280, 2560, 3200],
    "step 160 to 1280, then current": list(range(320, 1281, 160)) + [1600, 2048, 2560, 3200],
    "step 80 to 1280, then current": list(range(320, 1281, 80)) + [1600, 2048, 2560, 3200],
}
print(f"{'buckets':40} {'ms/line':>8} {'vs exact':>8} {'plans':>6} {'build ms':>9}")
exact = sum(interp(max(320, min(w, 3200)), 1) for w in widths) / len(widths)
for name, b in cands.items():
    used = set()
    total = 0.0
    for w in widths:
        bw = next((x for x in b if x >= w), b[-1])
        used.add(bw)
        total += interp(bw, 1)
    build = sum(interp(x, 0) for x in used)
    print(f"{name:40} {total/len(widths):8.2f} {total/len(widths)/exact:8.2f} {len(used):6} {build:9.0f}")
print(f"{'exact width (lower bound, a plan per width)':40} {exact:8.2f}")
PY
