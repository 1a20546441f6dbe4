#!/usr/bin/env python3
"""Summariser of scripts/bench-engine.sh (python3 standard library only).

  bench_engine.py summary OUT        markdown tables from the raw files in OUT, to stdout
  bench_engine.py bmp PATH W H       writes a blank white W×H 24-bit BMP (the compute-floor page)

Files read from OUT (written by bench-engine.sh): images.tsv (KIND GROUP PATH), run.env,
SYSTEM-{pages,lines}.jsonl (one JSON object per image; '#' lines skipped), ocrbox-cold-{page,line},
ocrbox-det960-{small,tiny}, ocrbox-rec320 and, for every process, NAME.time (/usr/bin/time and load average).
Medians are over images; a stage's median and the total's are taken separately, so the stages
need not add up to the total.
"""
import json
import os
import statistics
import struct
import sys

PEERS = ["rapidocr", "onnxocr", "tesseract"]
SYSTEMS = ["ocrbox"] + PEERS
LABEL = {"ocrbox": "ocrbox", "rapidocr": "RapidOCR 3.10", "onnxocr": "onnxocr 4.0.0", "tesseract": "Tesseract 5"}
STAGES = ["decode", "det", "cls", "rec", "total"]
# Each runner's names for the stages (RapidOCR reports no decode time; Tesseract only the total).
KEYS = {
    "ocrbox": {"decode": "decode_ms", "det": "detect_ms", "cls": "classify_ms", "rec": "recognize_ms"},
    "onnxocr": {"decode": "decode_ms", "det": "detect_ms", "cls": "classify_ms", "rec": "recognize_ms"},
    "rapidocr": {"det": "det_ms", "cls": "cls_ms", "rec": "rec_ms"},
    "tesseract": {},
}
PAGE_GROUPS = [("pages, all", None), ("pages, rendered + SROIE", {"rendered-dev", "sroie_pages-dev"}),
               ("pages, multilingual", {"multilingual-dev"})]
LINE_SETS = ["rendered-dev", "multilingual-dev", "sroie_lines-dev", "captchacracker_digits-dev", "amazon_captcha-dev"]
# Compute floor: 2 FLOP per multiply-accumulate at one core's AVX2+FMA peak (2 cores ≈ 157 GFLOP/s).
CORE_GFLOPS = 78.5
# GMAC at the floor shapes (scripts/bench_macs.py: Conv + ConvTranspose + MatMul).
GMAC = {"det small 960×960": 9.749, "det tiny 960×960": 2.980, "rec 48×320": 1.092}


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a half-written last line of a killed run
    return out


def load_kv(path, by_line=False):
    """KEY=VALUE pairs: one per line (run.env, values may hold spaces) or space-separated tokens
    (/usr/bin/time's record, which may start with a "Command exited ..." line)."""
    kv = {}
    if os.path.exists(path):
        for line in open(path):
            for tok in [line.strip()] if by_line else line.split():
                k, _, v = tok.partition("=")
                if v:
                    kv[k] = v
    return kv


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, unit=""):
    if v is None:
        return "—"
    return (f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}") + unit


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "—"


def stages_of(system, rec):
    keys, t = KEYS[system], rec.get("timings") or {}
    s = {st: t.get(keys[st]) if st in keys else None for st in STAGES}
    s["total"] = rec.get("time_ms")
    return s


def warm_runs(out, system, kind):
    """path -> record of the warm reading (ocrbox: the second of its two readings)."""
    recs = load_jsonl(f"{out}/{system}-{kind}s.jsonl")
    warm, seen = {}, set()
    for r in recs:
        p = os.path.realpath(r["file"])
        if system == "ocrbox" and p not in seen:
            seen.add(p)
            continue
        warm[p] = r
    return warm, recs


def table(header, rows):
    """A markdown table; columns of figures are right-aligned."""
    def figures(i):
        return i > 0 and all(not r[i] or r[i][0] in "0123456789.—≤" for r in rows)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if figures(i) else "---" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()


def summary(out):
    images = [l.rstrip("\n").split("\t") for l in open(f"{out}/images.tsv") if l.strip()]
    group_of = {os.path.realpath(p): g for _, g, p in images}
    first = {k: os.path.realpath(next(p for kk, _, p in images if kk == k)) for k in ("page", "line")}
    env = load_kv(f"{out}/run.env", by_line=True)
    runs = {(s, k): warm_runs(out, s, k) for s in SYSTEMS for k in ("page", "line")}
    present = [s for s in SYSTEMS if runs[(s, "page")][1] or runs[(s, "line")][1]]
    peers = [p for p in PEERS if p in present]

    def values(system, kind, groups, stage):
        warm = runs[(system, kind)][0]
        return [stages_of(system, r)[stage] for p, r in warm.items()
                if "error" not in r and (groups is None or group_of.get(p) in groups)]

    n_pages = sum(1 for k, _, _ in images if k == "page")
    n_lines = len(images) - n_pages
    print(f"## bench-engine: {n_pages} pages, {n_lines} lines, one thread each\n")
    print(f"ocrbox `{env.get('ocrbox_version', '?')}` (binary sha256 {env.get('ocrbox_sha256', '?')}…, "
          f"mtime {env.get('ocrbox_mtime', '?')[:19]}"
          + ("" if env.get("ocrbox_mtime") == env.get("ocrbox_mtime_end") else
             f", CHANGED during the run to {env.get('ocrbox_mtime_end', '?')[:19]}")
          + f"), commit {env.get('commit', '?')}; {env.get('started', '?')} → {env.get('finished', '?')}; "
          f"load average at start {env.get('loadavg_start', '?')}, at end {env.get('loadavg_end', '?')}; "
          f"{os.cpu_count()} CPUs.\n")

    groups = [("page", name, g) for name, g in PAGE_GROUPS]
    groups += [("line", "lines, all", None)] + [("line", f"lines, {s}", {s}) for s in LINE_SETS]
    print("### Warm, end to end: median ms per image (ratio = ocrbox ÷ peer: below 1 ocrbox is faster)\n")
    rows = []
    for kind, name, g in groups:
        meds = {s: med(values(s, kind, g, "total")) for s in present}
        n = len(values("ocrbox", kind, g, "total")) if "ocrbox" in present else 0
        if not any(meds.values()):
            continue
        rows.append([name, str(n)] + [fmt(meds[s]) for s in present]
                    + [ratio(meds.get("ocrbox"), meds[p]) for p in peers])
    table(["group", "n"] + [LABEL[s] for s in present] + [f"ocrbox ÷ {LABEL[p].split()[0]}" for p in peers], rows)

    print("### Warm, per stage: median ms per image (Tesseract reports no stages; RapidOCR no decode)\n")
    rows = []
    for kind, name, g in groups[:4]:
        for st in STAGES:
            meds = {s: med(values(s, kind, g, st)) for s in present}
            rows.append([name if st == "decode" else "", st] + [fmt(meds[s]) for s in present]
                        + [ratio(meds.get("ocrbox"), meds[p]) for p in peers])
    table(["group", "stage"] + [LABEL[s] for s in present] + [f"ocrbox ÷ {LABEL[p].split()[0]}" for p in peers], rows)

    print("### Cold: a fresh process's first image (ratio = ocrbox ÷ peer)\n")
    rows, cold_page = [], None
    for kind in ("page", "line"):
        name = os.path.basename(first[kind])
        c, imp = {}, {}
        t = load_kv(f"{out}/ocrbox-cold-{kind}.time")
        if "wall_s" in t:
            c["ocrbox"] = imp["ocrbox"] = float(t["wall_s"]) * 1000
        if kind == "page":
            cold_page = c.get("ocrbox")
        for p in ("rapidocr", "onnxocr"):
            recs = runs[(p, kind)][1]
            if recs and "cold_ms" in recs[0]:
                c[p] = recs[0]["cold_ms"]
                imp[p] = recs[0]["cold_ms"] + recs[0].get("import_ms", 0)
        recs = runs[("tesseract", kind)][1]
        if recs and "time_ms" in recs[0]:
            c["tesseract"] = imp["tesseract"] = recs[0]["time_ms"]
        rows.append([f"{kind} ({name}): engine + first image", *[fmt(c.get(s)) for s in present],
                     *[ratio(c.get("ocrbox"), c.get(p)) for p in peers]])
        rows.append([f"{kind}: the same + Python imports", *[fmt(imp.get(s)) for s in present],
                     *[ratio(imp.get("ocrbox"), imp.get(p)) for p in peers]])
    table(["", *[LABEL[s] for s in present], *[f"ocrbox ÷ {LABEL[p].split()[0]}" for p in peers]], rows)
    first_ms = {k: (load_jsonl(f"{out}/ocrbox-cold-{k}.jsonl") or [{}])[0].get("time_ms") for k in ("page", "line")}
    print(f"ocrbox's cold = the process's wall time (start, model parsing, plan building, first image); "
          f"its first image alone took {fmt(first_ms['page'])} ms (page) and {fmt(first_ms['line'])} ms (line) "
          "inside it. The Python peers' cold excludes interpreter start-up and imports (the second row adds "
          "imports); Tesseract's is its first image's process, like all its images.\n")

    if "ocrbox" in present and "rapidocr" in present:
        print("### Issue #9 speed targets (ocrbox ÷ RapidOCR 3.10)\n")
        rows = []
        for what, kind, g, target in [("warm page, rendered + SROIE", "page", {"rendered-dev", "sroie_pages-dev"}, 0.5),
                                      ("warm line, all sampled lines", "line", None, 0.3)]:
            a, b = med(values("ocrbox", kind, g, "total")), med(values("rapidocr", kind, g, "total"))
            wo, wr = runs[("ocrbox", kind)][0], runs[("rapidocr", kind)][0]
            per = med([wo[p]["time_ms"] / wr[p]["time_ms"] for p in wo if p in wr and wr[p].get("time_ms")
                       and "error" not in wr[p] and (g is None or group_of.get(p) in g)])
            r = a / b if a and b else None
            rows.append([what, f"≤ {target}", ratio(a, b), f"{per:.2f}" if per else "—",
                         f"{1 / r:.1f}×" if r else "—", "met" if r and r <= target else "NOT met"])
        rows.append(["cold page (ocrbox process wall)", "≤ 1500 ms", fmt(cold_page, " ms"), "", "",
                     "met" if cold_page and cold_page <= 1500 else "NOT met"])
        table(["target", "goal", "ratio of medians", "median of per-image ratios", "RapidOCR ÷ ocrbox", ""], rows)

    if "ocrbox" in present:
        print(f"### ocrbox against the compute floor (floor = 2 × MAC ÷ {CORE_GFLOPS} GFLOP/s, one core's "
              "AVX2+FMA peak)\n")
        def share(name):  # the process's CPU ÷ wall: how much of a core it got
            t = load_kv(f"{out}/{name}.time")
            return (float(t["user_s"]) + float(t["sys_s"])) / float(t["wall_s"]) if t.get("wall_s") else None

        measured = {}
        for shape, name, stage, how in [
                ("det small 960×960", "ocrbox-det960-small", "detect_ms", "blank 1024² page: detect stage"),
                ("det tiny 960×960", "ocrbox-det960-tiny", "detect_ms", "blank 1024² page: detect stage"),
                ("rec 48×320", "ocrbox-rec320", "recognize_ms",
                 "blank 320×48 strip read whole: recognize stage (+ one cls window)")]:
            recs = load_jsonl(f"{out}/{name}.jsonl")[1:]  # reading 1 builds the plans
            measured[shape] = (med([r["timings"][stage] for r in recs]), len(recs), share(name), how)
        rows = []
        for shape, gmac in GMAC.items():
            floor = 2 * gmac / CORE_GFLOPS * 1000
            m, n, cpu, how = measured[shape]
            rows.append([shape + (" (default)" if "small" in shape else ""), f"{gmac:.2f}", fmt(floor), fmt(m),
                         f"{m / floor:.1f}×" if m else "—", f"{m * cpu / floor:.1f}×" if m and cpu else "—",
                         f"{how}, median of readings 2-{n + 1}"])
        table(["stage at shape", "GMAC", "floor ms", "measured ms", "measured ÷ floor",
               "× process CPU÷wall ÷ floor", "measured on"], rows)
        print("The last ratio scales the wall time by the share of a core the process got (from its run "
              "conditions row): an estimate of the distance with the core to itself.\n")

    print("### Run conditions (one process per row; CPU ÷ wall below 1 = waiting, mostly for a core)\n")
    rows = []
    for name in sorted(f[:-5] for f in os.listdir(out) if f.endswith(".time")):
        t = load_kv(f"{out}/{name}.time")
        if "wall_s" not in t:
            continue
        wall, cpu = float(t["wall_s"]), float(t["user_s"]) + float(t["sys_s"])
        rows.append([name, f"{wall:.1f}", f"{cpu:.1f}", f"{cpu / wall:.2f}" if wall else "—",
                     f"{int(t['maxrss_kib']) / 1024:.0f}", t.get("load_before", "?")])
    table(["process", "wall s", "CPU s", "CPU ÷ wall", "peak RSS MiB", "load before"], rows)

    odd = []
    for s in present:
        for kind in ("page", "line"):
            recs = [r for r in runs[(s, kind)][0].values()]
            errs = [os.path.basename(r["file"]) for r in recs if "error" in r]
            empty = sum(1 for r in recs if "error" not in r and not (r.get("text") or "").strip())
            expected = n_pages if kind == "page" else n_lines
            if errs or len(recs) != expected:
                odd.append(f"{LABEL[s]} {kind}s: {len(recs)}/{expected} timed"
                           + (f", errors on {', '.join(errs[:8])}" if errs else ""))
            if empty:
                odd.append(f"{LABEL[s]} {kind}s: {empty} empty outputs (still timed)")
    if odd:
        print("Notes: " + "; ".join(odd) + ".")


def bmp(path, w, h):
    row = b"\xff" * (3 * w) + b"\0" * (-3 * w % 4)  # rows padded to 4 bytes
    data = row * h
    head = struct.pack("<2sIHHI", b"BM", 54 + len(data), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(head + info + data)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "summary":
        summary(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "bmp":
        bmp(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
