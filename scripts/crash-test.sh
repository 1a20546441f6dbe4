#!/usr/bin/env bash
# Crash test: SIGKILL the server mid-traffic, restart it on the same database, audit the ledger.
#
#   scripts/crash-test.sh [-k KILLS] [-b BINARY] [-s SEED] [-L [-n BOXES]]
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
#
# -L, fleet mode: a throwaway PostgreSQL (stress-env.sh) and BOXES (default 3) `ocrbox serve
# --ledger` processes on it, 1 worker each; the key is made with `keys --ledger URL add`. The 4
# clients send their submits round robin over the live boxes and poll each task on another box
# than the one that accepted it. Each round one box (at random) gets SIGKILL mid-traffic; the
# traffic goes on over the others for 0.5-2 s while the box is restarted on the same ledger (a
# new process, so a new box id), then every task is followed to its end. The killed box's
# tasks still in process must end "fail" with the server-stopped detail once its heartbeat is
# 10 s old ("lost"; any other failure is a violation), and must not be charged:
#     seen ok  <=  charged  <=  seen ok + in flight at the kill            (as above)
#     charged  <=  seen ok + submits to the killed box left unanswered    (lost ones free)
# Also: `24h` == all charged, every box's /api/balance agrees, `keys --ledger list --json`
# agrees, no box log shows a panic or error; after the last round no row of `tasks` may stay
# 'in_process' (psql, waited for up to 40 s); finally SIGTERM stops every box cleanly.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
kills=20 bin="$here/target/release/ocrbox" seed="" fleet=0 boxes=""
while getopts "k:b:s:Ln:h" opt; do
    case $opt in
        k) kills=$OPTARG ;;
        b) bin=$OPTARG ;;
        s) seed=$OPTARG ;;
        L) fleet=1 ;;
        n) boxes=$OPTARG ;;
        *) sed -n '2,34p' "$0"; exit 2 ;;
    esac
done
if [ -n "$boxes" ] && [ "$fleet" = 0 ]; then echo "-n needs -L" >&2; exit 2; fi
# shellcheck source=scripts/stress-env.sh
. "$here/scripts/stress-env.sh"

if [ "$fleet" = 1 ]; then
PYTHONPATH="$here/scripts" python3 - "$bin" "$tmp" "$kills" "$seed" "$here/tests/fixtures" \
    "${boxes:-3}" <<'PY'
import http.client, os, random, re, signal, sys, threading, time
from stresslib import Server, add_key, balance, call, keys_list, psql, submit

binary, tmp, kills, seed, fixtures, nboxes = sys.argv[1:7]
kills, nboxes = int(kills), int(nboxes)
seed = int(seed) if seed else random.randrange(1 << 31)
rng = random.Random(seed)
INITIAL, CLIENTS = 100_000, 4
NAMES = ["line_001.png", "digits_000040.png", "line_026.png", "AABTRE.jpg", "digits_003080.png"]
images = [open(os.path.join(fixtures, n), "rb").read() for n in NAMES]
ledger = os.environ["STRESS_LEDGER"]
BAD_LOG = re.compile(r"DatabaseAlreadyOpen|in use by another|repair|panicked|ERROR", re.I)
LOST = "the server reading this task stopped; not charged"  # FailReason::Lost
TASK_LIMIT = 90  # s: a task still in process this long after its submit is stuck

violations = []
def violation(msg):
    violations.append(msg)
    print(f"  VIOLATION: {msg}", flush=True)

log_pos = {}
def check_log(srv):
    since = log_pos.get(srv.name, 0)
    text = open(srv.log, errors="replace").read()[since:]
    for line in text.splitlines():
        if BAD_LOG.search(line):
            violation(f"{srv.name} log: {line.strip()[:200]}")
    log_pos[srv.name] = since + len(text)

boxes = [Server(binary, ledger, tmp, "--workers", "1", name=f"box{i + 1}") for i in range(nboxes)]
gen = [0] * nboxes          # restarts of each box: (box, gen) names one process
live = set()                # boxes whose current process serves
state_lock = threading.Lock()

def alive():
    """[(box, gen, addr)] of the processes serving now."""
    with state_lock:
        return [(b, gen[b], boxes[b].addr) for b in sorted(live)]

def gone(proc):
    """Whether the process `proc` = (box, gen) has been killed (then errors talking to it are
    expected)."""
    b, g = proc
    with state_lock:
        return b not in live or gen[b] != g

def client(cid, key, stop, tasks, lock, r):
    """Submits round robin over the live boxes until `stop`, following each task to its end on
    other boxes. A task dict ends in one state: ok, fail, unanswered (submit sent to a box
    that died, no answer), refused (the box was dead: nothing sent), busy (503), expired (404),
    stuck, or error (talking to a live box failed)."""
    turn = cid
    while not stop.is_set():
        procs = alive()
        if not procs:
            time.sleep(0.05)
            continue
        b, g, addr = procs[turn % len(procs)]
        turn += 1
        t = {"state": "unanswered", "proc": (b, g), "polls": 0, "cross": 0}
        with lock:
            tasks.append(t)
        try:
            status, hdr, doc = submit(addr, key, r.choice(images))
        except (OSError, http.client.HTTPException) as e:
            if gone((b, g)):
                if isinstance(e, ConnectionRefusedError):
                    t["state"] = "refused"
                continue  # else "unanswered": the box may have taken it before it died
            t["state"], t["why"] = "error", f"submit to box{b + 1}: {e!r}"
            return
        if status == 503:
            t["state"] = "busy"
            time.sleep(float(hdr.get("retry-after", "1")))
            continue
        if status != 200:
            t["state"], t["why"] = "error", f"submit to box{b + 1}: {status} {doc}"
            return
        t["state"], t["task"], t0 = "inflight", doc["task_id"], time.monotonic()
        poll_turn = turn
        while True:
            if time.monotonic() - t0 > TASK_LIMIT:
                t["state"], t["why"] = "stuck", f"{t['task']} in process after {TASK_LIMIT} s"
                break
            procs = alive()
            others = [p for p in procs if p[0] != b] or procs
            if not others:
                time.sleep(0.05)
                continue
            pb, pg, paddr = others[poll_turn % len(others)]
            poll_turn += 1
            try:
                status, _, doc = call(paddr, "GET", f"/api/ocr/result/{t['task']}?api={key}")
            except (OSError, http.client.HTTPException) as e:
                if gone((pb, pg)):
                    continue
                t["state"], t["why"] = "error", f"poll on box{pb + 1}: {e!r}"
                return
            t["polls"] += 1
            t["cross"] += pb != b
            if status == 404:
                t["state"] = "expired"
                break
            if status != 200:
                t["state"], t["why"] = "error", f"poll on box{pb + 1}: {status} {doc}"
                return
            if doc["result"] != "in_process":
                t["state"] = "ok" if doc["status"] == "ok" else "fail"
                t["why"], t["ended"] = doc["result"], time.monotonic()
                break
            time.sleep(0.05)

def start_all():
    errors = []
    def one(i):
        try:
            boxes[i].start()
        except RuntimeError as e:
            errors.append(f"box{i + 1}: {e}")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(nboxes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors

def balances(key):
    """{box: (solves, 24h)} from every live box."""
    return {b: balance(addr, key) for b, _, addr in alive()}

def in_process_rows():
    return psql("SELECT id, box, credits, created, expires FROM tasks "
                "WHERE state = 'in_process' ORDER BY created")

try:
    key = add_key(binary, ledger, INITIAL, "crash")
except Exception as e:
    sys.exit(f"crash-test: cannot create the key: {e}")
errors = start_all()
if errors:
    sys.exit(f"crash-test: first start failed: {'; '.join(errors)}")
live.update(range(nboxes))
for srv in boxes:
    check_log(srv)
if set(balances(key).values()) != {(INITIAL, 0)}:
    sys.exit(f"crash-test: fresh key shows {balances(key)}")
print(f"seed {seed}; key with {INITIAL} solves; {kills} kills; {CLIENTS} clients; "
      f"fleet of {nboxes} boxes (1 worker each) on {ledger}", flush=True)

prev = INITIAL
tot = dict(ok=0, charged=0, inflight=0, unanswered=0, lost=0, fail=0, expired=0, busy=0,
           polls=0, cross=0)
restart_times, lost_after, traffic = [], [], 0.0
for rnd in range(1, kills + 1):
    stop, lock, tasks = threading.Event(), threading.Lock(), []
    threads = [threading.Thread(target=client, args=(i, key, stop, tasks, lock,
                                                      random.Random(rng.random())))
               for i in range(CLIENTS)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    delay = rng.uniform(0.5, 4.0)
    time.sleep(delay)
    v = rng.randrange(nboxes)
    with state_lock:
        live.discard(v)  # before the kill: no new request goes to it
        victim = (v, gen[v])
    code = boxes[v].stop(signal.SIGKILL)
    t_kill = time.monotonic()
    with lock:
        at_kill = [t["state"] for t in tasks if t["proc"] == victim]
    k_inflight, k_unanswered = at_kill.count("inflight"), at_kill.count("unanswered")
    if code != -signal.SIGKILL:
        violation(f"round {rnd}: box{v + 1} had already exited with {code}")
    time.sleep(rng.uniform(0.5, 2.0))  # the others serve on
    try:
        restart_times.append(boxes[v].start())
    except RuntimeError as e:
        violation(f"round {rnd}: restart of box{v + 1} failed: {e}")
        stop.set()
        for t in threads:
            t.join()
        break
    with state_lock:
        gen[v] += 1
        live.add(v)
    stop.set()
    traffic += time.monotonic() - t_start
    for t in threads:
        t.join()
    count = lambda s: sum(1 for t in tasks if t["state"] == s)
    n = {s: count(s) for s in ("ok", "fail", "unanswered", "expired", "busy")}
    lost = [t for t in tasks if t["state"] == "fail" and t["why"] == LOST]
    for t in tasks:
        if t["state"] in ("error", "expired", "stuck"):
            violation(f"round {rnd}: {t['state']}: {t.get('why', '')}")
        elif t["state"] == "fail" and t["why"] != LOST:
            violation(f"round {rnd}: a valid image failed: {t['why']}")
        elif t["state"] == "fail" and t["proc"] != victim:
            violation(f"round {rnd}: task {t['task']} of box{t['proc'][0] + 1} (not killed) "
                      f"ended lost")
        elif t["state"] == "unanswered" and t["proc"] != victim:
            violation(f"round {rnd}: a submit to box{t['proc'][0] + 1} (not killed) unanswered")
    lost_after += [t["ended"] - t_kill for t in lost]
    for srv in boxes:
        check_log(srv)
    seen = balances(key)
    solves, h24 = seen[v]
    if len(set(seen.values())) != 1:
        violation(f"round {rnd}: the boxes disagree on the balance: {seen}")
    charged = prev - solves
    hi = n["ok"] + k_inflight + k_unanswered
    tight = n["ok"] + n["unanswered"]
    if not n["ok"] <= charged <= hi:
        violation(f"round {rnd}: charged {charged}, expected {n['ok']}..{hi}")
    if charged > tight:
        violation(f"round {rnd}: charged {charged} > seen ok {n['ok']} + unanswered "
                  f"{n['unanswered']}: a lost task was charged")
    if h24 != INITIAL - solves:
        violation(f"round {rnd}: 24h {h24} != total charged {INITIAL - solves}")
    listed = [k for k in keys_list(binary, ledger) if k["name"] == "crash"]
    if [(k["solves"], k["last_24h"]) for k in listed] != [(solves, h24)]:
        violation(f"round {rnd}: keys list {listed} != balance ({solves}, {h24})")
    polls, cross = sum(t["polls"] for t in tasks), sum(t["cross"] for t in tasks)
    for k in ("ok", "unanswered", "expired", "busy"):
        tot[k] += n[k]
    tot["fail"] += n["fail"] - len(lost)
    tot["lost"] += len(lost)
    tot["inflight"] += k_inflight
    tot["charged"] += charged
    tot["polls"] += polls
    tot["cross"] += cross
    prev = solves
    lost_in = max(t["ended"] for t in lost) - t_kill if lost else 0
    print(f"round {rnd:2}  kill box{v + 1} at {delay:4.2f} s  seen ok {n['ok']:3}  "
          f"in flight {k_inflight} + unanswered {k_unanswered}  lost {len(lost)}"
          f"{f' (failed {lost_in:.1f} s after the kill)' if lost else ''}"
          f"  charged {charged:3} (allowed {n['ok']}..{min(hi, tight)})"
          f"  restart {restart_times[-1]:.2f} s  polls on another box {cross}/{polls}",
          flush=True)

# After the last round: nothing may stay in process (the killed processes' heartbeats age out).
t0 = time.monotonic()
rows = in_process_rows()
while rows and time.monotonic() - t0 < 40:
    time.sleep(1)
    rows = in_process_rows()
drained = time.monotonic() - t0
if rows:
    violation(f"{len(rows)} task rows still 'in_process' after 40 s: {rows[:5]}")
states = dict((s, int(c)) for s, c in psql("SELECT state, count(*) FROM tasks GROUP BY state"))
procs = psql("SELECT count(*) FROM boxes")[0][0]
for srv in boxes:
    code = srv.stop(signal.SIGTERM)
    if code != 0:
        violation(f"{srv.name} SIGTERM: exit code {code}")
    check_log(srv)
final = [k for k in keys_list(binary, ledger) if k["name"] == "crash"]
if [k["solves"] for k in final] != [prev] or INITIAL - prev != tot["charged"]:
    violation(f"final keys list {final}, expected solves {prev}")

print(f"summary: rounds {len(restart_times)}/{kills}, boxes {nboxes}, "
      f"submits for {traffic:.1f} s ({tot['ok'] / max(traffic, 1e-9):.2f} ok/s), "
      f"solves seen ok {tot['ok']}, "
      f"charged {tot['charged']} ({tot['charged'] - tot['ok']} charged but unseen), "
      f"in flight at kill {tot['inflight']} + unanswered submits {tot['unanswered']}, "
      f"lost (failed, uncharged) {tot['lost']}"
      f"{f' within {max(lost_after):.1f} s of the kill' if lost_after else ''}, "
      f"other failures {tot['fail']}, expired {tot['expired']}, busy {tot['busy']}, "
      f"polls on another box {tot['cross']}/{tot['polls']}, "
      f"restart max {max(restart_times, default=0):.2f} s, "
      f"in_process rows {len(rows)} (after {drained:.0f} s; tasks table {states}, "
      f"{procs} box ids), violations {len(violations)}")
sys.exit(1 if violations else 0)
PY
exit
fi

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
