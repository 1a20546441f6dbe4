#!/usr/bin/env python3
"""Run `tesseract IMG - --psm N` on images and print JSON Lines like `ocrbox ocr --json` (text only).

Usage: scripts/tesseract_ocr.py [--psm 3|7] IMAGE...
--psm 3 (automatic page layout) for pages, --psm 7 (single text line) for line images.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+")
    ap.add_argument("--psm", default="3")
    ap.add_argument("--lang", default="eng")
    args = ap.parse_args()
    for path in args.images:
        t = time.perf_counter()
        p = subprocess.run(["tesseract", path, "-", "--psm", args.psm, "-l", args.lang],
                           capture_output=True, text=True)
        rec = {"file": os.path.abspath(path), "text": p.stdout.strip(), "lines": [],
               "time_ms": round((time.perf_counter() - t) * 1000, 1)}
        if p.returncode:
            rec["error"] = p.stderr.strip()[-300:]
        print(json.dumps(rec, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    sys.exit(main())
