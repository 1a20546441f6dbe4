#!/usr/bin/env bash
# Usage: scripts/bench-engine.sh [REPEAT]     (REPEAT runs per image, default 5)
# Warm per-stage milliseconds (decode, det, cls, rec, total) of `ocrbox ocr --json` next to the
# onnxruntime reference (scripts/reference_ocr.py) with 1 intra-op thread and with onnxruntime's
# default (one thread per core), on a fixed image set: 4 rendered-dev pages, 2 SROIE pages,
# 10 rendered-dev lines. Warm = median of runs 2..REPEAT for ocrbox (run 1 is cold: tract builds
# plans lazily; reported separately), median of REPEAT runs after one warm-up image for the reference.
# Env: EVAL (../shared/eval, the shared/ folder beside the repository), OCRBOX (./target/release/ocrbox),
#      REFVENV (.venv in the repository, made by scripts/parity.sh), OUT (/tmp/bench)
# Run it on an otherwise idle machine: 2 cores here.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
REPEAT=${1:-5}
EVAL=${EVAL:-$here/../shared/eval}
OCRBOX=${OCRBOX:-./target/release/ocrbox}
REFVENV=${REFVENV:-$here/.venv}
OUT=${OUT:-/tmp/bench}
mkdir -p "$OUT"

imgs=("$EVAL"/rendered-dev/page_{0,1,2,3}.png "$EVAL"/sroie_pages-dev/images/00{0,1}.jpg)
for i in 0 1 2 3 4 5 6 7 8 9; do imgs+=("$(ls "$EVAL"/rendered-dev/line_00$i.*)"); done

rep=()
for img in "${imgs[@]}"; do for _ in $(seq "$REPEAT"); do rep+=("$img"); done; done
echo "ocrbox: ${#imgs[@]} images x $REPEAT" >&2
if [ -x "$OCRBOX" ]; then "$OCRBOX" ocr --json "${rep[@]}" > "$OUT/ocrbox.jsonl"; else : > "$OUT/ocrbox.jsonl"; fi
for t in 1 0; do
  echo "reference threads=$t: ${#imgs[@]} images x $REPEAT" >&2
  "$REFVENV/bin/python" scripts/reference_ocr.py --warmup --repeat "$REPEAT" --threads "$t" "${imgs[@]}" > "$OUT/ref-t$t.jsonl"
done

python3 - "$OUT" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
STAGES = ["decode_ms", "detect_ms", "classify_ms", "recognize_ms", "time_ms"]

def load(path):
    runs = {}
    for line in open(path):
        o = json.loads(line)
        runs.setdefault(o["file"], []).append({**o.get("timings", {}), "time_ms": o.get("time_ms", 0)})
    return runs

def group(f):
    return "rendered pages" if "page_" in f else "sroie pages" if "sroie" in f else "lines"

systems = {"ocrbox": load(f"{out}/ocrbox.jsonl"),
           "ort 1 thread": load(f"{out}/ref-t1.jsonl"),
           "ort default": load(f"{out}/ref-t0.jsonl")}
table = {}  # (system, group) -> [sum of warm medians per stage], n
cold = {}
for name, runs in systems.items():
    for f, rs in runs.items():
        warm = rs[1:] if name == "ocrbox" and len(rs) > 1 else rs
        med = [statistics.median(r.get(s, 0) for r in warm) for s in STAGES]
        for g in (group(f), "ALL"):
            acc, n = table.get((name, g), ([0.0] * 5, 0))
            table[(name, g)] = ([a + m for a, m in zip(acc, med)], n + 1)
        if name == "ocrbox":
            cold[f] = rs[0]["time_ms"]

print(f"warm milliseconds per image (mean over the group of per-image medians); ncpu={os.cpu_count()}")
print(f"{'group':<15} {'system':<13} {'n':>3} {'decode':>8} {'det':>8} {'cls':>8} {'rec':>8} {'total':>8} {'img/s':>7}")
for g in ["rendered pages", "sroie pages", "lines", "ALL"]:
    for name in systems:
        if (name, g) not in table:
            continue
        acc, n = table[(name, g)]
        mean = [a / n for a in acc]
        print(f"{g:<15} {name:<13} {n:>3} " + " ".join(f"{m:>8.1f}" for m in mean) + f" {1000 / mean[4] if mean[4] else 0:>7.2f}")
    if ("ocrbox", g) in table:
        ob = table[("ocrbox", g)][0]
        for ref in ["ort 1 thread", "ort default"]:
            r = table[(ref, g)][0]
            print(f"{g:<15} {'x vs ' + ref.split()[1]:<13} {'':>3} " +
                  " ".join(f"{(o / x if x else 0):>8.2f}" for o, x in zip(ob, r)))
if cold:
    first = next(iter(cold))
    print(f"\nocrbox cold (run 1) total ms: first image of the process {cold[first]:.1f}; "
          f"mean over images of run 1 {statistics.mean(cold.values()):.1f}")
PY
