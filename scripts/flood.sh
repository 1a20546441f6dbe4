#!/usr/bin/env bash
# Flood test: many more simultaneous submits than queue slots.
#
#   scripts/flood.sh [-q QUEUE] [-w WORKERS] [-t TASK_TTL] [-b BINARY]
#
# Starts `ocrbox serve --queue QUEUE --workers WORKERS` (default 8 and 2, task TTL 30s) on
# 127.0.0.1 with a fresh database and a key of 10000 solves, then fires two waves of
# 10 x QUEUE submits, each wave released at once from its own threads (the second after the
# Retry-After of the first's 503s, as a polite client would), cycling over line, digit, captcha and page images from tests/fixtures.
# Checks: every answer is 200 or 503; every 503 has a Retry-After of at least 1 s and the body
# {"status":"fail","detail":"..."}; every accepted task, polled every 100 ms, ends "ok" or expires
# (404); the server then accepts and solves one more image; finally balance == initial - ok
# results and 24h == ok results (expired tasks cost nothing). With a very short -t, a task may
# finish just before its expiry and be charged unseen: the check then flags it.
# Prints the 200/503 counts per wave, the outcome of the accepted tasks, the ledger, and the
# server's RSS and peak RSS (VmHWM); exits 1 on any violation.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
queue=8 workers=2 ttl=30s bin="$here/target/release/ocrbox"
while getopts "q:w:t:b:h" opt; do
    case $opt in
        q) queue=$OPTARG ;;
        w) workers=$OPTARG ;;
        t) ttl=$OPTARG ;;
        b) bin=$OPTARG ;;
        *) sed -n '2,16p' "$0"; exit 2 ;;
    esac
done
. "$here/scripts/stress-env.sh"

PYTHONPATH="$here/scripts" python3 - "$bin" "$tmp" "$queue" "$workers" "$ttl" "$here/tests/fixtures" <<'PY'
import os, signal, sys, threading, time
from stresslib import Server, add_key, balance, call, submit

binary, tmp, queue, workers, ttl, fixtures = sys.argv[1:7]
queue = int(queue)
INITIAL, N = 10_000, 10 * int(queue)
NAMES = ["line_001.png", "digits_000040.png", "line_046.png", "AACXRC.jpg", "page_0.png"]
images = [open(os.path.join(fixtures, n), "rb").read() for n in NAMES]
db = os.path.join(tmp, "db.redb")
key = add_key(binary, db, INITIAL, "flood")
srv = Server(binary, db, tmp, "--queue", str(queue), "--workers", workers, "--task-ttl", ttl)
srv.start()
print(f"queue {queue}, workers {workers}, task TTL {ttl}: 2 waves of {N} simultaneous submits",
      flush=True)

violations = []
def violation(msg):
    violations.append(msg)
    print(f"  VIOLATION: {msg}", flush=True)

def wave(n):
    """n submits released together; returns [(status, headers, doc)] in submit order."""
    out, go = [None] * n, threading.Barrier(n)
    def one(i):
        go.wait()
        try:
            out[i] = submit(srv.addr, key, images[i % len(images)])
        except Exception as e:
            out[i] = (0, {}, {"error": repr(e)})
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out

tasks, retry_after = [], 0
for w in (1, 2):
    time.sleep(retry_after)
    t0 = time.monotonic()
    answers = wave(N)
    wall = time.monotonic() - t0
    ok = [d for s, _, d in answers if s == 200]
    busy = [(h, d) for s, h, d in answers if s == 503]
    for s, h, d in answers:
        if s == 200 and not (d.get("status") == "ok" and d.get("result") == "in_process"
                             and d.get("task_id")):
            violation(f"wave {w}: bad 200 body {d}")
        elif s not in (200, 503):
            violation(f"wave {w}: status {s} {d}")
    for h, d in busy:
        ra = h.get("retry-after", "")
        if not (ra.isdigit() and int(ra) >= 1):
            violation(f"wave {w}: 503 with Retry-After {ra!r}")
        if set(d) != {"status", "detail"} or d["status"] != "fail" or not isinstance(d["detail"], str):
            violation(f"wave {w}: 503 body {d}")
    tasks += [d["task_id"] for d in ok]
    retry_after = max([int(h["retry-after"]) for h, _ in busy if h.get("retry-after", "").isdigit()],
                      default=0)
    print(f"wave {w}: {len(ok)} x 200, {len(busy)} x 503 in {wall:.2f} s"
          f" (Retry-After {sorted({h.get('retry-after') for h, _ in busy})},"
          f" detail {sorted({d.get('detail') for _, d in busy})})", flush=True)

outcome = {}
def poll(task):
    while True:
        s, _, d = call(srv.addr, "GET", f"/api/ocr/result/{task}?api={key}")
        if s == 404:
            outcome[task] = "expired"
            return
        if s != 200:
            outcome[task] = f"http {s}"
            return
        if d["result"] != "in_process":
            outcome[task] = d["status"] if d["status"] == "ok" else f"fail: {d['result']}"
            return
        time.sleep(0.1)
t0 = time.monotonic()
pollers = [threading.Thread(target=poll, args=(t,)) for t in tasks]
for t in pollers:
    t.start()
for t in pollers:
    t.join()
counts = {}
for o in outcome.values():
    counts[o] = counts.get(o, 0) + 1
for o in counts:
    if o not in ("ok", "expired"):
        violation(f"{counts[o]} accepted task(s) ended {o!r}")
print(f"accepted {len(tasks)}: {counts} after {time.monotonic() - t0:.1f} s of polling", flush=True)

# The flood is over: the server must take work again (once workers finish tasks that expired
# while they ran them, which with a short TTL can take a few tries).
after = None
for attempt in range(10):
    s, h, d = submit(srv.addr, key, images[0])
    if s == 503:
        time.sleep(int(h.get("retry-after", "1")))
        continue
    if s != 200:
        break
    poll(d["task_id"])
    after = outcome[d["task_id"]]
    counts[after] = counts.get(after, 0) + 1
    if after == "ok":
        break
if (s, after) != (200, "ok"):
    violation(f"no solve after the flood: last {s} {d}")

solves, h24 = balance(srv.addr, key)
ok = counts.get("ok", 0)
print(f"ledger: {ok} ok results; balance {solves} (expected {INITIAL - ok}), 24h {h24}", flush=True)
if solves != INITIAL - ok or h24 != ok:
    violation(f"ledger: balance {solves}, 24h {h24}; expected {INITIAL - ok}, {ok}")
rss, hwm = srv.mem()
print(f"server RSS {rss:.1f} MiB, peak (VmHWM) {hwm:.1f} MiB")
if srv.stop(signal.SIGTERM) != 0:
    violation("server did not exit cleanly on SIGTERM")
print(f"violations {len(violations)}")
sys.exit(1 if violations else 0)
PY
