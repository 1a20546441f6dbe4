#!/usr/bin/env bash
# Soak test: mixed good and bad traffic against one server for a while.
#
#   scripts/soak.sh [-m MINUTES] [-c CLIENTS] [-w WORKERS] [-b BINARY]
#
# Starts `ocrbox serve` (release binary, 127.0.0.1, default workers and queue) with a fresh
# database and a key of 1,000,000 solves. C client threads (default 4) then loop for MINUTES
# (default 10), each time picking one of:
#   valid     35%  a fixture image (lines, digits, captchas, a receipt, a page), polled every
#                  100 ms to its result, which must be "ok"
#   balance   15%  GET /api/balance                                     -> 200
#   random    10%  random bytes as the image                            -> 400
#   truncated 10%  the first half of a PNG  -> 200, then the task must end "fail" (not charged)
#   field     10%  a valid image under the field name "file"            -> 400
#   badkey    10%  a valid image with an unknown key                    -> 401
#   unknown   10%  GET /api/ocr/result/<random uuid>                    -> 404
# A 503 (queue full) is counted and waited out (Retry-After). Prints the server's RSS (VmRSS)
# at start and every minute, then: requests and images per second, p50/p99 latency per request
# kind ("submit" = upload of a valid image, "solve e2e" = its submit to final result, "result"
# = each poll, "truncated e2e" likewise), counts by HTTP status,
# unexpected answers, RSS at the end and peak (VmHWM), and whether the ledger matches
# (charged = initial - balance = ok results = 24h). Exits 1 on any unexpected answer,
# connection error or ledger mismatch.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
minutes=10 clients=4 workers="" bin="$here/target/release/ocrbox"
while getopts "m:c:w:b:h" opt; do
    case $opt in
        m) minutes=$OPTARG ;;
        c) clients=$OPTARG ;;
        w) workers=$OPTARG ;;
        b) bin=$OPTARG ;;
        *) sed -n '2,23p' "$0"; exit 2 ;;
    esac
done
. "$here/scripts/stress-env.sh"

PYTHONPATH="$here/scripts" python3 - "$bin" "$tmp" "$minutes" "$clients" "$workers" \
    "$here/tests/fixtures" <<'PY'
import collections, os, random, signal, sys, threading, time, uuid
from stresslib import Server, add_key, balance, call, pct, submit

binary, tmp, minutes, clients, workers, fixtures = sys.argv[1:7]
minutes, clients = float(minutes), int(clients)
INITIAL = 1_000_000
NAMES = ["line_001.png", "line_026.png", "line_055.jpg", "digits_000040.png", "digits_004420.png",
         "AABTRE.jpg", "sroie_100_011.png", "page_0.png"]
images = [open(os.path.join(fixtures, n), "rb").read() for n in NAMES]
truncated = images[0][: len(images[0]) // 2]
KINDS = {"valid": 35, "balance": 15, "random": 10, "truncated": 10, "field": 10, "badkey": 10,
         "unknown": 10}
db = os.path.join(tmp, "db.redb")
key = add_key(binary, db, INITIAL, "soak")
srv = Server(binary, db, tmp, *(["--workers", workers] if workers else []))
srv.start()

lock = threading.Lock()
lat = collections.defaultdict(list)         # kind -> seconds
statuses = collections.Counter()            # HTTP status -> count
unexpected = collections.Counter()          # description -> count
done = collections.Counter()                # valid_ok, truncated_fail, ...

def record(kind, status, seconds):
    with lock:
        lat[kind].append(seconds)
        statuses[status] += 1

def req(kind, fn, *args):
    t0 = time.monotonic()
    try:
        s, h, d = fn(*args)
    except Exception as e:
        with lock:
            unexpected[f"{kind}: {type(e).__name__}"] += 1
        return None, {}, {}
    record(kind, s, time.monotonic() - t0)
    return s, h, d

def expect(kind, s, want, d):
    if s != want and s != 503:
        with lock:
            unexpected[f"{kind}: {s} {str(d.get('detail', d))[:60]}"] += 1

def follow(kind, task, t0):
    """Polls a task to its end; returns the final document (or None)."""
    while True:
        s, _, d = req("result", call, srv.addr, "GET", f"/api/ocr/result/{task}?api={key}")
        if s != 200:
            expect("result", s, 200, d or {})
            return None
        if d["result"] != "in_process":
            with lock:
                lat[kind + " e2e"].append(time.monotonic() - t0)
            return d
        time.sleep(0.1)

def one(r, kind):
    img = r.choice(images)
    if kind == "balance":
        s, _, d = req(kind, call, srv.addr, "GET", f"/api/balance?api={key}")
        expect(kind, s, 200, d)
    elif kind == "unknown":
        s, _, d = req(kind, call, srv.addr, "GET", f"/api/ocr/result/{uuid.uuid4()}?api={key}")
        expect(kind, s, 404, d)
    elif kind == "random":
        s, h, d = req(kind, submit, srv.addr, key, os.urandom(r.randrange(1, 20000)))
        expect(kind, s, 400, d)
    elif kind == "field":
        s, h, d = req(kind, submit, srv.addr, key, img, "file")
        expect(kind, s, 400, d)
    elif kind == "badkey":
        s, h, d = req(kind, submit, srv.addr, os.urandom(20).hex(), img)
        expect(kind, s, 401, d)
    else:  # valid or truncated: submit, then follow to the end
        t0 = time.monotonic()
        s, h, d = req("submit" if kind == "valid" else kind, submit, srv.addr, key,
                      img if kind == "valid" else truncated)
        expect(kind, s, 200, d)
        if s == 200:
            end = follow("solve" if kind == "valid" else kind, d["task_id"], t0)
            if end is not None:
                with lock:
                    done[f"{kind} {end['status']}"] += 1
                    if (kind == "valid") != (end["status"] == "ok"):
                        unexpected[f"{kind} task ended {end['status']}: {end['result'][:40]}"] += 1
    if s == 503:
        time.sleep(int(h.get("retry-after", "1")))

def client(seed, deadline):
    r = random.Random(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    while time.monotonic() < deadline:
        one(r, r.choices(kinds, weights)[0])

start = time.monotonic()
deadline = start + minutes * 60
rss0 = srv.mem()[0]
print(f"soak: {minutes:g} min, {clients} clients, server {srv.addr} workers {workers or 'default'}; "
      f"RSS at start {rss0:.1f} MiB", flush=True)
threads = [threading.Thread(target=client, args=(i, deadline)) for i in range(clients)]
for t in threads:
    t.start()
rss_samples = [rss0]
minute = 0
while any(t.is_alive() for t in threads):
    time.sleep(1)
    if time.monotonic() - start >= 60 * (minute + 1) and minute + 1 <= minutes:
        minute += 1
        rss, hwm = srv.mem()
        rss_samples.append(rss)
        with lock:
            n, ok = sum(statuses.values()), done["valid ok"]
        print(f"minute {minute:3}: RSS {rss:6.1f} MiB (peak {hwm:.1f}), {n} requests, "
              f"{ok} images ok", flush=True)
wall = time.monotonic() - start
rss_end, hwm = srv.mem()

n, ok = sum(statuses.values()), done["valid ok"]
print(f"throughput: {n / wall:.1f} requests/s, {ok / wall:.2f} images/s ({n} requests, "
      f"{ok} images in {wall:.0f} s)")
print("latency (ms)        count     p50     p99")
for kind in ["submit", "solve e2e", "result", "balance", "random", "truncated", "truncated e2e",
             "field", "badkey", "unknown"]:
    v = lat.get(kind, [])
    if v:
        print(f"  {kind:15} {len(v):9} {pct(v, 50) * 1000:7.1f} {pct(v, 99) * 1000:7.1f}")
print("statuses: " + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items())))
print("tasks: " + ", ".join(f"{k}: {c}" for k, c in sorted(done.items())))
print(f"RSS: start {rss0:.1f} MiB, end {rss_end:.1f} MiB, peak (VmHWM) {hwm:.1f} MiB; "
      f"per-minute samples {' '.join(f'{x:.0f}' for x in rss_samples)}")
solves, h24 = balance(srv.addr, key)
charged = INITIAL - solves
ledger_ok = charged == ok == h24
print(f"ledger: charged {charged}, ok results {ok}, 24h {h24}: "
      f"{'match' if ledger_ok else 'MISMATCH'}")
if unexpected:
    print("UNEXPECTED: " + "; ".join(f"{k} x{c}" for k, c in unexpected.most_common()))
if srv.stop(signal.SIGTERM) != 0:
    print("UNEXPECTED: server did not exit cleanly on SIGTERM")
    unexpected["exit"] += 1
sys.exit(0 if ledger_ok and not unexpected else 1)
PY
