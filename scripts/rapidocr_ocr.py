#!/usr/bin/env python3
"""Peer OCR: RapidOCR 3.10 with its DEFAULT config (PP-OCRv6 small det + rec, v2 mobile cls), one thread.

Usage (inside the peers venv, see scripts/baselines-v6.md):
  OMP_NUM_THREADS=1 nice -n 10 $VENV/bin/python scripts/rapidocr_ocr.py LABELS.tsv \\
        [--threads 1] [--limit N] [--no-warmup] > OUT.jsonl
  target/release/ocrbox eval LABELS.tsv --predictions OUT.jsonl [--ignore-case]

Install: python3 -m venv $VENV && $VENV/bin/pip install rapidocr==3.10.0 onnxruntime
(RapidOCR 3.10 ships its default models inside the wheel: nothing is downloaded.)

LABELS.tsv is IMAGE<TAB>TEXT (IMAGE relative to the TSV), as in ../shared/eval; only the image
column is used. Prints one JSON object per image (JSON Lines), the format `ocrbox eval --predictions` reads and
scripts/reference_ocr.py writes:
  {"file", "text", "lines":[{"text","confidence","box"}], "time_ms", "timings":{"det_ms","cls_ms",
   "rec_ms"}, "det_input":[H,W] (the tensor RapidOCR fed its detector), "prep_shape":[H,W]}
The first record also carries "cold_ms" (engine construction + first image: RapidOCR loads its
models lazily inside the first call), "load_ms" (constructor alone) and "import_ms".
Timing: the first image is run once as warm-up (that run is the cold time); then every image,
the first one included, is run and timed (time_ms = warm wall time of ocr(image path), decode
included); "cpu_ms" is the process CPU time of that run (less sensitive than wall time to
other load on the machine). A last line "# summary {...}" (skipped by `ocrbox eval --predictions`) gives median warm ms and cold ms.
Text: boxes in RapidOCR's own order; consecutive boxes whose top-left y differs by < 10 px are one
visual line joined by a space, visual lines joined by "\\n" (same rule as scripts/reference_ocr.py).
The only change to RapidOCR's defaults is the thread count: EngineConfig.onnxruntime
intra_op_num_threads/inter_op_num_threads = --threads (default 1) and log_level warning.
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import rapidocr  # noqa: E402
from rapidocr import RapidOCR  # noqa: E402
from rapidocr.ch_ppocr_det import utils as det_utils  # noqa: E402

IMPORT_MS = (time.perf_counter() - T_START) * 1000
LAST = {}


def record_det_input():
    """Remember the shape of each detector input tensor and of the image handed to the detector."""
    orig = det_utils.DetPreProcess.__call__

    def call(self, img):
        LAST["prep_shape"] = list(img.shape[:2])
        out = orig(self, img)
        LAST["det_input"] = list(out.shape[2:]) if out is not None else None
        return out

    det_utils.DetPreProcess.__call__ = call


def read_images(tsv):
    base = os.path.dirname(os.path.abspath(tsv))
    out = []
    with open(tsv, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                out.append(os.path.realpath(os.path.join(base, line.split("\t", 1)[0])))
    return out


def page_text(lines):
    out, prev_y = [], None
    for ln in lines:
        y = ln["box"][0][1]
        if out and prev_y is not None and abs(y - prev_y) < 10:
            out[-1] += " " + ln["text"]
        else:
            out.append(ln["text"])
        prev_y = y
    return "\n".join(out)


def run_once(engine, path):
    LAST.clear()
    c, t = time.process_time(), time.perf_counter()
    res = engine(path)
    ms = (time.perf_counter() - t) * 1000
    LAST["cpu_ms"] = round((time.process_time() - c) * 1000, 2)
    lines = []
    if getattr(res, "txts", None) is not None and getattr(res, "boxes", None) is not None:
        scores = res.scores if res.scores is not None else [0.0] * len(res.txts)
        for box, text, conf in zip(res.boxes, res.txts, scores):
            lines.append({"text": text, "confidence": round(float(conf), 4),
                          "box": [[round(float(x), 1), round(float(y), 1)] for x, y in np.asarray(box)]})
    el = list(getattr(res, "elapse_list", []) or [])
    el += [None] * (3 - len(el))
    timings = {k: (round(v * 1000, 2) if isinstance(v, float) else None)
               for k, v in zip(("det_ms", "cls_ms", "rec_ms"), el[:3])}
    return lines, ms, timings, dict(LAST)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", help="labels TSV (IMAGE<TAB>TEXT)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--no-warmup", action="store_true", help="time the first image only once (cold)")
    args = ap.parse_args()

    images = read_images(args.labels)
    if args.limit:
        images = images[: args.limit]
    record_det_input()
    t0 = time.perf_counter()
    engine = RapidOCR(params={
        "Global.log_level": "warning",
        "EngineConfig.onnxruntime.intra_op_num_threads": args.threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })
    load_ms = (time.perf_counter() - t0) * 1000
    cold = run_once(engine, images[0])
    cold_ms = (time.perf_counter() - t0) * 1000

    warm, warm_cpu = [], []
    for i, path in enumerate(images):
        rec = {"file": path}
        try:
            if i == 0 and args.no_warmup:
                lines, ms, timings, det = cold
            else:
                lines, ms, timings, det = run_once(engine, path)
            warm.append(ms)
            warm_cpu.append(det["cpu_ms"])
            rec.update(text=page_text(lines), lines=lines, time_ms=round(ms, 2), timings=timings, **det)
        except Exception as e:  # one bad image must not stop a set
            rec.update(text="", lines=[], error=f"{type(e).__name__}: {e}")
        if i == 0:
            rec.update(cold_ms=round(cold_ms, 2), load_ms=round(load_ms, 2), import_ms=round(IMPORT_MS, 2),
                       cold_image_ms=round(cold[1], 2))
        print(json.dumps(rec, ensure_ascii=False), flush=True)

    summary = {"system": f"rapidocr {rapidocr.__version__ if hasattr(rapidocr, '__version__') else '3.10'}",
               "labels": os.path.abspath(args.labels), "n": len(images), "threads": args.threads,
               "median_warm_ms": round(statistics.median(warm), 2) if warm else None,
               "mean_warm_ms": round(statistics.mean(warm), 2) if warm else None,
               "median_warm_cpu_ms": round(statistics.median(warm_cpu), 2) if warm_cpu else None,
               "cold_ms": round(cold_ms, 2), "load_ms": round(load_ms, 2), "import_ms": round(IMPORT_MS, 2)}
    print("# summary " + json.dumps(summary), flush=True)
    print("# summary " + json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
