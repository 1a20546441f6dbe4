#!/usr/bin/env python3
"""Score OCR output (JSON Lines, one object per file with "file" and "text") against a labels TSV.

Usage:
  scripts/cer.py LABELS.tsv NAME=PRED.jsonl [NAME=PRED.jsonl ...] [--ignore-case]
                 [--worst N] [--per-image] [--set NAME]

LABELS.tsv lines are IMAGE<TAB>TEXT, IMAGE relative to the TSV, TEXT with \\n \\t \\\\ escapes.
Before comparing, every whitespace run becomes one space (and ends are stripped);
--ignore-case also folds case (use it for the SROIE sets, whose labels are upper case).
Metrics, summed over the set:
  CER    = sum(char Levenshtein) / sum(reference chars)
  WordAcc = 1 - sum(word Levenshtein) / sum(reference words)   (can go below 0)
  Exact  = share of images whose folded text equals the label
  BoWF1  = order-insensitive word bag F1 (useful for pages whose line order is uncertain)
A file missing from a prediction file counts as empty output. Pure Python, no dependencies.
"""
import argparse
import json
import os
import sys
from collections import Counter


def unescape(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(s[i + 1], "\\" + s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def fold(text, ignore_case=False):
    text = " ".join(text.split())
    return text.casefold() if ignore_case else text


def levenshtein(a, b):
    """Edit distance between two sequences (strings or lists of words)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def read_labels(path):
    base = os.path.dirname(os.path.abspath(path))
    items = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            img, _, text = line.partition("\t")
            items.append((os.path.realpath(os.path.join(base, img)), unescape(text)))
    return items


def read_predictions(path):
    preds = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                obj = json.loads(line)
                preds[os.path.realpath(obj["file"])] = obj.get("text") or ""
    return preds


def score_one(ref, hyp):
    rw, hw = ref.split(), hyp.split()
    common = sum((Counter(rw) & Counter(hw)).values())
    return {
        "cer_edits": levenshtein(ref, hyp), "chars": len(ref),
        "wer_edits": levenshtein(rw, hw), "words": len(rw),
        "exact": ref == hyp, "bow_common": common, "hyp_words": len(hw),
    }


def summarize(rows):
    s = Counter()
    for r in rows:
        s.update({k: int(v) for k, v in r.items()})
    prec = s["bow_common"] / s["hyp_words"] if s["hyp_words"] else 0.0
    rec = s["bow_common"] / s["words"] if s["words"] else 0.0
    return {
        "cer": s["cer_edits"] / max(1, s["chars"]),
        "word_acc": 1 - s["wer_edits"] / max(1, s["words"]),
        "exact": s["exact"] / max(1, len(rows)),
        "bow_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "n": len(rows),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels")
    ap.add_argument("preds", nargs="+", help="NAME=PRED.jsonl")
    ap.add_argument("--ignore-case", action="store_true")
    ap.add_argument("--worst", type=int, default=0, help="show the N worst images of the LAST prediction file")
    ap.add_argument("--per-image", action="store_true", help="print per-image CER for every prediction file")
    ap.add_argument("--set", default=None, help="set name shown in the table")
    args = ap.parse_args()

    labels = read_labels(args.labels)
    setname = args.set or os.path.relpath(args.labels)
    print(f"{'set':<34} {'system':<10} {'n':>4} {'CER':>7} {'WordAcc':>8} {'Exact':>6} {'BoWF1':>6}")
    per = {}
    for spec in args.preds:
        name, _, path = spec.partition("=")
        if not os.path.exists(path):
            print(f"{setname:<34} {name:<10} (no output: {path})")
            continue
        preds = read_predictions(path)
        rows = []
        for img, ref in labels:
            hyp = preds.get(img, "")
            rows.append((img, fold(ref, args.ignore_case), fold(hyp, args.ignore_case)))
        scores = [score_one(r, h) for _, r, h in rows]
        per[name] = list(zip(rows, scores))
        m = summarize(scores)
        print(f"{setname:<34} {name:<10} {m['n']:>4} {m['cer']:>7.4f} {m['word_acc']:>8.4f} "
              f"{m['exact']:>6.3f} {m['bow_f1']:>6.3f}")

    if args.per_image:
        for name, items in per.items():
            print(f"\nper-image {name}:")
            for (img, ref, hyp), s in items:
                print(f"  {os.path.basename(img):<24} CER {s['cer_edits'] / max(1, s['chars']):.4f} "
                      f"({s['cer_edits']}/{s['chars']})  word edits {s['wer_edits']}/{s['words']}")
    if args.worst and per:
        name, items = list(per.items())[-1]
        items = sorted(items, key=lambda it: (-it[1]["cer_edits"] / max(1, it[1]["chars"]), -it[1]["cer_edits"]))
        print(f"\nworst {args.worst} for {name}:")
        for (img, ref, hyp), s in items[: args.worst]:
            print(f"  {os.path.basename(img)}  CER {s['cer_edits'] / max(1, s['chars']):.3f}")
            print(f"    ref: {ref[:160]!r}")
            print(f"    got: {hyp[:160]!r}")


if __name__ == "__main__":
    sys.exit(main())
