#!/usr/bin/env bash
# Crash test: SIGKILL the server mid-traffic, restart it on the same database, audit the ledger.
#
#   scripts/crash-test.sh [-k KILLS] [-b BINARY] [-s SEED]
#
# Makes a fresh database with one key of 100000 solves and starts `ocrbox serve` on it
# (127.0.0.1, port 0, 2 workers). Each round, 4 client threads submit real images
# (tests/fixtures) and poll every result (50 ms); after a random 0.5-4 s the server gets SIGKILL.
# It is restarted on the same database (on odd rounds `keys list` first opens the crashed file
# directly), and the ledger is checked against what the clients saw. The server charges a credit
# in the same redb write transaction that records the usage, and publishes the result only after
# that commit, so for each round:
#     seen ok  <=  charged  <=  seen ok + in flight at the kill
# where "in flight" counts accepted tasks with no final result seen, plus submits sent but not
# answered (the server may have queued them). Also: `24h` == all charged so far, `keys list`
# (admin socket) agrees with /api/balance, every restart succeeds despite the stale
# `<db>.sock`, the log shows no DatabaseAlreadyOpen/repair error or panic, no valid image fails
# and no request errs before the kill. Finally a SIGTERM must stop the server cleanly.
# Prints one line per round and a summary; exits 1 on any violation or if the database or the
# server fails to open.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
kills=20 bin="$here/target/release/ocrbox" seed=""
while getopts "k:b:s:h" opt; do
    case $opt in
        k) kills=$OPTARG ;;
        b) bin=$OPTARG ;;
        s) seed=$OPTARG ;;
        *) sed -n '2,20p' "$0"; exit 2 ;;
    esac
done
. "$here/scripts/stress-env.sh"

PYTHONPATH="$here/scripts" python3 - "$bin" "$tmp" "$kills" "$seed" "$here/tests/fixtures" <<'PY'
import http.client, os, random, re, signal, sys, threading, time
from stresslib import Server, add_key, balance, call, keys_list, submit

binary, tmp, kills, seed, fixtures = sys.argv[1:6]
kills = int(kills)
seed = int(seed) if seed else random.randrange(1 << 31)
rng = random.Random(seed)
INITIAL, CLIENTS = 100_000, 4
NAMES = ["line_001.png", "digits_000040.png", "line_026.png", "AABTRE.jpg", "digits_003080.png"]
images = [open(os.path.join(fixtures, n), "rb").read() for n in NAMES]
db = os.path.join(tmp, "db.redb")
sock = db + ".sock"
BAD_LOG = re.compile(r"DatabaseAlreadyOpen|in use by another|repair|panicked|ERROR", re.I)

violations = []
def violation(msg):
    violations.append(msg)
    print(f"  VIOLATION: {msg}", flush=True)

def check_log(srv, since):
    text = open(srv.log, errors="replace").read()[since:]
    for line in text.splitlines():
        if BAD_LOG.search(line):
            violation(f"server log: {line.strip()[:200]}")
    return since + len(text)

def client(srv, key, stop, tasks, lock, r):
    """Submits and polls until the server dies; each task dict ends in one state:
    ok, fail, inflight (accepted, no final result), unanswered (submit sent, no answer),
    refused (never reached the server), busy (503), expired (404), or error (before the kill)."""
    while not stop.is_set():
        t = {"state": "unanswered"}
        with lock:
            tasks.append(t)
        try:
            status, hdr, doc = submit(srv.addr, key, r.choice(images))
        except ConnectionRefusedError:
            t["state"] = "refused"
            return
        except (OSError, http.client.HTTPException) as e:
            if not stop.is_set():
                t["state"], t["why"] = "error", f"submit: {e!r}"
            return
        if status == 503:
            t["state"] = "busy"
            time.sleep(float(hdr.get("retry-after", "1")))
            continue
        if status != 200:
            t["state"], t["why"] = "error", f"submit: {status} {doc}"
            return
        t["state"] = "inflight"
        while True:
            try:
                status, _, doc = call(srv.addr, "GET", f"/api/ocr/result/{doc['task_id']}?api={key}")
            except (OSError, http.client.HTTPException) as e:
                if not stop.is_set():
                    t["state"], t["why"] = "error", f"poll: {e!r}"
                return
            if status == 404:
                t["state"] = "expired"
                break
            if status != 200:
                t["state"], t["why"] = "error", f"poll: {status} {doc}"
                return
            if doc["result"] != "in_process":
                t["state"] = "ok" if doc["status"] == "ok" else "fail"
                t["why"] = doc["result"]
                break
            time.sleep(0.05)

try:
    key = add_key(binary, db, INITIAL, "crash")
except Exception as e:
    sys.exit(f"crash-test: cannot create the key: {e}")
srv = Server(binary, db, tmp, "--workers", "2")
try:
    srv.start()
except RuntimeError as e:
    sys.exit(f"crash-test: first start failed: {e}")
log_pos = check_log(srv, 0)
if balance(srv.addr, key) != (INITIAL, 0):
    sys.exit(f"crash-test: fresh key shows {balance(srv.addr, key)}")
print(f"seed {seed}; key with {INITIAL} solves; {kills} kills; {CLIENTS} clients", flush=True)

prev = INITIAL
tot = dict(ok=0, charged=0, inflight=0, unanswered=0, fail=0, expired=0, stale=0)
restart_times = []
for rnd in range(1, kills + 1):
    stop, lock, tasks = threading.Event(), threading.Lock(), []
    threads = [threading.Thread(target=client, args=(srv, key, stop, tasks, lock,
                                                      random.Random(rng.random())))
               for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    delay = rng.uniform(0.5, 4.0)
    time.sleep(delay)
    stop.set()  # set before the kill: any error seen while it is clear is a real error
    code = srv.stop(signal.SIGKILL)
    for t in threads:
        t.join()
    count = lambda s: sum(1 for t in tasks if t["state"] == s)
    n = {s: count(s) for s in ("ok", "fail", "inflight", "unanswered", "expired")}
    for t in tasks:
        if t["state"] in ("error", "fail", "expired"):
            violation(f"round {rnd}: {t['state']}: {t.get('why', '')}")
    if code != -signal.SIGKILL:
        violation(f"round {rnd}: server had already exited with {code}")
    stale = os.path.exists(sock)
    tot["stale"] += stale
    if rnd % 2:  # the crashed file opened directly (no server, stale socket refuses)
        try:
            keys_list(binary, db)
        except Exception as e:
            violation(f"round {rnd}: keys list on the crashed database: {e}")
    try:
        restart_times.append(srv.start())
    except RuntimeError as e:
        violation(f"round {rnd}: restart failed: {e}")
        break
    log_pos = check_log(srv, log_pos)
    solves, h24 = balance(srv.addr, key)
    charged = prev - solves
    hi = n["ok"] + n["inflight"] + n["unanswered"] + n["expired"]
    if not n["ok"] <= charged <= hi:
        violation(f"round {rnd}: charged {charged}, expected {n['ok']}..{hi}")
    if h24 != INITIAL - solves:
        violation(f"round {rnd}: 24h {h24} != total charged {INITIAL - solves}")
    listed = [k for k in keys_list(binary, db) if k["name"] == "crash"]
    if [(k["solves"], k["last_24h"]) for k in listed] != [(solves, h24)]:
        violation(f"round {rnd}: keys list {listed} != balance ({solves}, {h24})")
    for k in ("ok", "inflight", "unanswered", "fail", "expired"):
        tot[k] += n[k]
    tot["charged"] += charged
    prev = solves
    print(f"round {rnd:2}  kill at {delay:4.2f} s  seen ok {n['ok']:3}  in flight {n['inflight']}"
          f" + unanswered {n['unanswered']}  charged {charged:3} (allowed {n['ok']}..{hi})"
          f"  stale socket {'yes' if stale else 'no'}  restart {restart_times[-1]:.2f} s",
          flush=True)

code = srv.stop(signal.SIGTERM)
if code != 0:
    violation(f"SIGTERM: exit code {code}")
if os.path.exists(sock):
    violation("socket left after a clean shutdown")
check_log(srv, log_pos)
final = [k for k in keys_list(binary, db) if k["name"] == "crash"]
if [k["solves"] for k in final] != [prev] or INITIAL - prev != tot["charged"]:
    violation(f"final keys list {final}, expected solves {prev}")

print(f"summary: rounds {len(restart_times)}/{kills}, solves seen ok {tot['ok']}, "
      f"charged {tot['charged']} ({tot['charged'] - tot['ok']} charged but unseen), "
      f"in flight at kill {tot['inflight']} + unanswered submits {tot['unanswered']}, "
      f"failed {tot['fail']}, expired {tot['expired']}, stale sockets {tot['stale']}, "
      f"restart max {max(restart_times, default=0):.2f} s, violations {len(violations)}")
sys.exit(1 if violations else 0)
PY
