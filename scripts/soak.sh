#!/usr/bin/env bash
# Soak test: mixed good and bad traffic against one server for a while.
#
#   scripts/soak.sh [-m MINUTES] [-c CLIENTS] [-w WORKERS] [-b BINARY] [-L [-n BOXES]]
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
#
# -L, fleet mode: a throwaway PostgreSQL (stress-env.sh) and BOXES (default 3) `ocrbox serve
# --ledger` processes on it, WORKERS (default 1) each; the key is made with `keys --ledger URL
# add`. The same traffic goes to the boxes directly, round robin, each poll of a task to
# another box than the one that accepted it. Prints each box's RSS every minute, then each
# box's start, end and peak RSS, the requests sent to each box (round robin, then polls), and
# the PostgreSQL server's total RSS (and PSS, which counts its shared buffers once) at the
# start and the end, summed over its processes. The ledger check is the same (balance read on
# every box: they agree).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
minutes=10 clients=4 workers="" bin="$here/target/release/ocrbox" fleet=0 boxes=""
while getopts "m:c:w:b:Ln:h" opt; do
    case $opt in
        m) minutes=$OPTARG ;;
        c) clients=$OPTARG ;;
        w) workers=$OPTARG ;;
        b) bin=$OPTARG ;;
        L) fleet=1 ;;
        n) boxes=$OPTARG ;;
        *) sed -n '2,32p' "$0"; exit 2 ;;
    esac
done
if [ -n "$boxes" ] && [ "$fleet" = 0 ]; then echo "-n needs -L" >&2; exit 2; fi
# shellcheck source=scripts/stress-env.sh
. "$here/scripts/stress-env.sh"
if [ "$fleet" = 1 ]; then boxes=${boxes:-3} workers=${workers:-1}; fi

PYTHONPATH="$here/scripts" python3 - "$bin" "$tmp" "$minutes" "$clients" "$workers" \
    "$here/tests/fixtures" "$boxes" <<'PY'
import collections, itertools, os, random, signal, sys, threading, time, uuid
from stresslib import Server, add_key, balance, call, pct, pg_mem, psql, submit

binary, tmp, minutes, clients, workers, fixtures, nboxes = sys.argv[1:8]
minutes, clients = float(minutes), int(clients)
fleet = bool(nboxes)  # -L: nboxes boxes on the PostgreSQL ledger of stress-env.sh
INITIAL = 1_000_000
NAMES = ["line_001.png", "line_026.png", "line_055.jpg", "digits_000040.png", "digits_004420.png",
         "AABTRE.jpg", "sroie_100_011.png", "page_0.png"]
images = [open(os.path.join(fixtures, n), "rb").read() for n in NAMES]
truncated = images[0][: len(images[0]) // 2]
KINDS = {"valid": 35, "balance": 15, "random": 10, "truncated": 10, "field": 10, "badkey": 10,
         "unknown": 10}
if fleet:
    db = os.environ["STRESS_LEDGER"]
    key = add_key(binary, db, INITIAL, "soak")
    boxes = [Server(binary, db, tmp, "--workers", workers, name=f"box{i + 1}")
             for i in range(int(nboxes))]
    starters = [threading.Thread(target=b.start) for b in boxes]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    if not all(b.addr for b in boxes):
        sys.exit("soak: a box did not start: " + "; ".join(b.tail(300) for b in boxes))
    srv = boxes[0]
else:
    db = os.path.join(tmp, "db.redb")
    key = add_key(binary, db, INITIAL, "soak")
    srv = Server(binary, db, tmp, *(["--workers", workers] if workers else []))
    srv.start()
    boxes = [srv]
turns = itertools.count()
per_box = collections.Counter()             # (box index, "new" or "poll") -> requests sent

def pick(among=None, turn=None):
    """(index, address) of the next box, round robin over all boxes; or the `turn`-th of the
    list `among`."""
    choices = among or range(len(boxes))
    i = choices[(next(turns) if turn is None else turn) % len(choices)]
    with lock:
        per_box[i, "new" if turn is None else "poll"] += 1
    return i, boxes[i].addr

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

def follow(kind, task, t0, accepted):
    """Polls a task (on other boxes than the one that `accepted` it) to its end; returns the
    final document (or None)."""
    others = [i for i in range(len(boxes)) if i != accepted] or [accepted]
    for turn in itertools.count(accepted):
        s, _, d = req("result", call, pick(others, turn)[1], "GET",
                      f"/api/ocr/result/{task}?api={key}")
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
    b, addr = pick()
    if kind == "balance":
        s, _, d = req(kind, call, addr, "GET", f"/api/balance?api={key}")
        expect(kind, s, 200, d)
    elif kind == "unknown":
        s, _, d = req(kind, call, addr, "GET", f"/api/ocr/result/{uuid.uuid4()}?api={key}")
        expect(kind, s, 404, d)
    elif kind == "random":
        s, h, d = req(kind, submit, addr, key, os.urandom(r.randrange(1, 20000)))
        expect(kind, s, 400, d)
    elif kind == "field":
        s, h, d = req(kind, submit, addr, key, img, "file")
        expect(kind, s, 400, d)
    elif kind == "badkey":
        s, h, d = req(kind, submit, addr, os.urandom(20).hex(), img)
        expect(kind, s, 401, d)
    else:  # valid or truncated: submit, then follow to the end
        t0 = time.monotonic()
        s, h, d = req("submit" if kind == "valid" else kind, submit, addr, key,
                      img if kind == "valid" else truncated)
        expect(kind, s, 200, d)
        if s == 200:
            end = follow("solve" if kind == "valid" else kind, d["task_id"], t0, b)
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
if fleet:
    rss0s = [b.mem()[0] for b in boxes]
    pg0 = pg_mem()
    print(f"soak: {minutes:g} min, {clients} clients, fleet of {len(boxes)} boxes "
          f"({' '.join(b.addr for b in boxes)}) workers {workers} each on {db}; RSS at start "
          f"{' / '.join(f'{x:.1f}' for x in rss0s)} MiB; PostgreSQL RSS {pg0[0]:.1f} MiB "
          f"(PSS {pg0[1]:.1f})", flush=True)
else:
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
        if fleet:
            mems = [b.mem() for b in boxes]
            print(f"minute {minute:3}: RSS {' / '.join(f'{m[0]:.1f}' for m in mems)} MiB (peak "
                  f"{' / '.join(f'{m[1]:.1f}' for m in mems)}), {n} requests, {ok} images ok",
                  flush=True)
        else:
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
if fleet:
    print("requests per box (polls apart): " + ", ".join(
        f"{b.name} {per_box[i, 'new']} + {per_box[i, 'poll']} polls" for i, b in enumerate(boxes)))
    for i, b in enumerate(boxes):
        r_end, h = b.mem()
        print(f"RSS {b.name}: start {rss0s[i]:.1f} MiB, end {r_end:.1f} MiB, peak (VmHWM) {h:.1f} MiB")
    pg1 = pg_mem()
    print(f"PostgreSQL (all its processes): RSS start {pg0[0]:.1f} MiB, end {pg1[0]:.1f} MiB; "
          f"PSS start {pg0[1]:.1f} MiB, end {pg1[1]:.1f} MiB")
else:
    print(f"RSS: start {rss0:.1f} MiB, end {rss_end:.1f} MiB, peak (VmHWM) {hwm:.1f} MiB; "
          f"per-minute samples {' '.join(f'{x:.0f}' for x in rss_samples)}")
solves, h24 = balance(srv.addr, key)
charged = INITIAL - solves
ledger_ok = charged == ok == h24
if fleet:
    seen = {b.name: balance(b.addr, key) for b in boxes}
    if len(set(seen.values())) != 1:
        ledger_ok = False
        print(f"UNEXPECTED: the boxes disagree on the balance: {seen}")
    rows = dict(psql("SELECT state, count(*) FROM tasks GROUP BY state"))
    print(f"tasks table: {rows}")
print(f"ledger: charged {charged}, ok results {ok}, 24h {h24}: "
      f"{'match' if ledger_ok else 'MISMATCH'}")
if unexpected:
    print("UNEXPECTED: " + "; ".join(f"{k} x{c}" for k, c in unexpected.most_common()))
for b in boxes:
    if b.stop(signal.SIGTERM) != 0:
        print(f"UNEXPECTED: {'server' if b is srv and not fleet else b.name} did not exit cleanly on SIGTERM")
        unexpected["exit"] += 1
sys.exit(0 if ledger_ok and not unexpected else 1)
PY
