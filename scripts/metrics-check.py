#!/usr/bin/env python3
"""Checks a running ocrbox's metrics exposition with prometheus_client's own parsers.

    metrics-check.py METRICS_URL [--secret TEXT]... [--after-traffic]

METRICS_URL is the metrics listener (`--metrics-listen`), e.g. http://127.0.0.1:9464. The
exposition is fetched twice: as the Prometheus text format (no Accept header, as curl asks)
and as OpenMetrics (the Accept header Prometheus sends), and each is parsed by
prometheus_client's parser for that format (the OpenMetrics one is strict: `# EOF`, names,
units, histogram buckets). Both must hold the same families with the expected types, and no
--secret (API keys, key ids) may appear in either text.

--after-traffic: the server has read one image for a key and refused one upload with 402
(what scripts/metrics-test.sh does), so the request, OCR, credit and refusal series have moved.
Exit code 0 when all checks pass; the first failure is printed and exits 1.
"""

import argparse
import sys
import urllib.request

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

OPENMETRICS = "application/openmetrics-text"

# Family name (as the parsers give it, without `_total`) -> type, in each format.
FAMILIES = {
    "ocrbox_http_requests": "counter",
    "ocrbox_refusals": "counter",
    "ocrbox_ocr_seconds": "histogram",
    "ocrbox_credits_charged": "counter",
    "ocrbox_tasks_in_flight": "gauge",
    "ocrbox_queue_depth": "gauge",
    "ocrbox_queue_capacity": "gauge",
    "ocrbox_workers": "gauge",
    "ocrbox_plan_cache_bytes": "gauge",
    "ocrbox_lent_core_items": "counter",
    "process_resident_memory_bytes": "gauge",
}
# Families whose series appear with their first event (a family without series is not written).
ON_FIRST_EVENT = {"ocrbox_http_requests"}
# The build info is a gauge ending in `_info` in the Prometheus format, an info in OpenMetrics.
BUILD = {"prometheus": ("ocrbox_build_info", "gauge"), "openmetrics": ("ocrbox_build", "info")}


def fetch(url, accept):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("Content-Type", ""), resp.read().decode("utf-8")


def check(cond, what):
    if not cond:
        print(f"metrics-check: FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def value(families, family, sample, **labels):
    """The value of the sample named `sample` of `family` whose labels include `labels`."""
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    check(False, f"no sample {sample}{labels}")


def parsed(url, fmt, secrets, after_traffic):
    accept = f"{OPENMETRICS};version=1.0.0,text/plain;version=0.0.4;q=0.5" if fmt == "openmetrics" else None
    ctype, text = fetch(url, accept)
    want = OPENMETRICS if fmt == "openmetrics" else "text/plain; version=0.0.4"
    check(ctype.startswith(want), f"{fmt}: Content-Type {ctype!r}, wanted {want!r}")
    for secret in secrets:
        check(secret not in text, f"{fmt}: a secret ({secret[:4]}…) appears in the exposition")
    parse = parse_openmetrics if fmt == "openmetrics" else parse_prometheus
    try:
        families = {f.name: f for f in parse(text)}
    except ValueError as e:
        check(False, f"{fmt}: the parser refused the exposition: {e}")
    expected = dict(FAMILIES)
    expected.setdefault(*BUILD[fmt])
    for name, typ in expected.items():
        if name in ON_FIRST_EVENT and not after_traffic and name not in families:
            continue
        check(name in families, f"{fmt}: family {name} missing")
        check(families[name].type == typ, f"{fmt}: {name} is {families[name].type}, wanted {typ}")
    extra = set(families) - set(expected)
    check(not extra, f"{fmt}: unexpected families {sorted(extra)}")
    return families


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", help="metrics listener, e.g. http://127.0.0.1:9464")
    ap.add_argument("--secret", action="append", default=[], help="text that must not appear")
    ap.add_argument("--after-traffic", action="store_true", help="one read and one 402 happened")
    args = ap.parse_args()
    url = args.url.rstrip("/") + "/metrics"

    for fmt in ("prometheus", "openmetrics"):
        fams = parsed(url, fmt, args.secret, args.after_traffic)
        check(value(fams, "ocrbox_workers", "ocrbox_workers") >= 1, f"{fmt}: no worker alive")
        check(value(fams, "process_resident_memory_bytes", "process_resident_memory_bytes") > 0,
              f"{fmt}: no RSS")
        for reason in ("no_solves", "queue_full", "shutting_down", "ledger_unavailable"):
            value(fams, "ocrbox_refusals", "ocrbox_refusals_total", reason=reason)
        buckets = [s for s in fams["ocrbox_ocr_seconds"].samples
                   if s.name == "ocrbox_ocr_seconds_bucket" and s.labels["kind"] == "image"]
        check(len(buckets) == 14 and buckets[-1].labels["le"] == "+Inf",
              f"{fmt}: {len(buckets)} image buckets, wanted 13 and +Inf")
        requests = fams.get("ocrbox_http_requests")
        for s in requests.samples if requests else []:
            route = s.labels["route"]
            check(route == "other" or route.startswith("/"), f"{fmt}: route label {route!r}")
        if args.after_traffic:
            solved = value(fams, "ocrbox_http_requests", "ocrbox_http_requests_total",
                           route="/api/ocr/solve", status="200")
            check(solved >= 1, f"{fmt}: no 200 from solve counted")
            check(value(fams, "ocrbox_http_requests", "ocrbox_http_requests_total",
                        route="/api/ocr/result/{task_id}", status="200") >= 1,
                  f"{fmt}: no result poll counted")
            check(value(fams, "ocrbox_refusals", "ocrbox_refusals_total",
                        status="402", reason="no_solves") >= 1, f"{fmt}: the 402 was not counted")
            check(value(fams, "ocrbox_ocr_seconds", "ocrbox_ocr_seconds_count", kind="image") >= 1,
                  f"{fmt}: no OCR time observed")
            check(value(fams, "ocrbox_ocr_seconds", "ocrbox_ocr_seconds_sum", kind="image") > 0,
                  f"{fmt}: OCR time sum is 0")
            check(value(fams, "ocrbox_credits_charged", "ocrbox_credits_charged_total") >= 1,
                  f"{fmt}: no credit charged")
            check(value(fams, "ocrbox_plan_cache_bytes", "ocrbox_plan_cache_bytes", model="rec") > 0,
                  f"{fmt}: no recogniser plan cached")
        print(f"metrics-check: {fmt}: {len(fams)} families parsed, all checks passed")


if __name__ == "__main__":
    main()
