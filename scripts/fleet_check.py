#!/usr/bin/env python3
"""The fleet's checks, over real HTTP through HAProxy (and to each box directly).

Run by scripts/fleet-test.sh, which starts PostgreSQL, three `ocrbox serve --ledger` boxes
and HAProxy, and passes their addresses. Scenarios (positional, in the order given):
  a  the spec's flows through the balancer: submit on one box, result read on another,
     balance and 24h move by one per success, 401, 402, wait= long-poll (also on a box other
     than the one reading), credit and revoke seen by every box at once
  b  300 concurrent submits (60 threads) on a key with 100 credits: exactly 100 charged
  e  throughput: images per second through HAProxy (three boxes) vs one box alone
  c  kill -9 of a box mid-load: HAProxy takes it out, its tasks end failed within ~15 s,
     ledger audit, no task left in_process (API and psql), the box restarted serves again
  d  PostgreSQL stopped (held down a few seconds), started, then `pg_ctl restart -m fast`,
     mid-load: meanwhile 503 + Retry-After (never 500, never a hang), recovery without
     restarting a box, ledger audit
Ledger audit, per load scenario, on a fresh key of INITIAL credits:
    seen ok  <=  charged (= INITIAL - solves)  <=  seen ok + unknown
where unknown = accepted tasks whose end was never seen (404 after expiry) + submits that got
no answer (502/timeout: a box may have taken them). Tasks seen "fail" must be uncharged, so
they are not in the bound. Also `24h` == charged.
Exit code 0 when every check passed; each failure is printed with what was sent and received.
"""
import argparse
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import requests

A = None  # the command line
H = ""  # HAProxy's base URL
BOXES = {}  # box name (as HAProxy's `server` lines name it) -> base URL
FAILURES = []
SCENARIO = ""
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def check(cond, msg, detail=None):
    if cond:
        log(f"  ok    {msg}")
    else:
        text = msg + (f"\n          {detail}" if detail else "")
        FAILURES.append(f"[{SCENARIO}] {text}")
        log(f"  FAIL  {text}")
    return bool(cond)


# ---------------------------------------------------------------- HTTP

_local = threading.local()


def session():
    s = getattr(_local, "s", None)
    if s is None:
        s = requests.Session()
        _local.s = s
    return s


class Resp:
    """One HTTP exchange: status (None when no answer), JSON doc, headers, answering box."""

    def __init__(self, method, url, r=None, error=None, elapsed=0.0):
        self.method, self.url, self.error, self.elapsed = method, url, error, elapsed
        self.status = r.status_code if r is not None else None
        self.headers = r.headers if r is not None else requests.structures.CaseInsensitiveDict()
        self.box = self.headers.get("X-Ocrbox-Box")
        self.text = r.text if r is not None else ""
        try:
            self.doc = r.json() if r is not None else None
        except ValueError:
            self.doc = None

    def get(self, field, default=None):
        return self.doc.get(field, default) if isinstance(self.doc, dict) else default

    def retry_after(self):
        v = self.headers.get("Retry-After")
        return int(v) if v is not None and v.strip().isdigit() else None

    def __repr__(self):
        what = f"{self.status} {self.text.strip()[:200]}" if self.status else f"no answer ({self.error})"
        box = f" [{self.box}]" if self.box else ""
        ra = f" Retry-After: {self.headers['Retry-After']}" if "Retry-After" in self.headers else ""
        return f"{self.method} {self.url.split('?')[0]} -> {what}{box}{ra} in {self.elapsed:.2f}s"


def call(method, url, timeout=40, **kw):
    t = time.monotonic()
    try:
        r = session().request(method, url, timeout=timeout, **kw)
        return Resp(method, url, r, elapsed=time.monotonic() - t)
    except requests.RequestException as e:
        # A reused keep-alive connection the far side closed: drop the pool, report no answer.
        _local.s = None
        return Resp(method, url, error=f"{type(e).__name__}: {e}"[:160], elapsed=time.monotonic() - t)


def balance(base, key, timeout=40):
    return call("GET", f"{base}/api/balance", params={"api": key}, timeout=timeout)


def submit(base, key, image, timeout=40):
    return call("POST", f"{base}/api/ocr/solve", params={"api": key},
                files={"image": ("image.png", image, "application/octet-stream")}, timeout=timeout)


def result(base, key, tid, wait=None, timeout=None):
    params = {"api": key}
    if wait is not None:
        params["wait"] = wait
    return call("GET", f"{base}/api/ocr/result/{tid}", params=params,
                timeout=timeout or (wait or 0) + 15)


def healthz(base, timeout=10):
    return call("GET", f"{base}/healthz", timeout=timeout)


# ---------------------------------------------------------------- CLI, psql, HAProxy, boxes

def cli(*args):
    r = subprocess.run([A.bin, *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"ocrbox {' '.join(args)} -> exit {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout


def keys(*args):
    return cli("keys", "--ledger", A.ledger, *args)


def add_key(solves, name):
    key = keys("add", "--solves", str(solves), "--name", name).strip()
    if not re.fullmatch(r"[0-9a-f]{40}", key):
        raise RuntimeError(f"keys add printed {key!r}, not a 40-hex key")
    return key


def psql(sql):
    r = subprocess.run([A.psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", A.ledger, "-c", sql],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def pgctl(*args):
    t = time.monotonic()
    r = subprocess.run([A.pgctl, *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)}: {r.stdout.strip()} {r.stderr.strip()}")
    return time.monotonic() - t


def haproxy_states():
    """{server name: status} of the boxes' backend, from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(A.stats_socket)
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    states = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") == "ocrbox_boxes" and row.get("svname") in BOXES:
            states[row["svname"]] = row["status"]
    return states


def wait_haproxy(want, timeout):
    """Waits until HAProxy sees every box in `want` ({name: "UP"|"DOWN"}); returns seconds or None."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        st = haproxy_states()
        if all(st.get(n) == s for n, s in want.items()):
            return time.monotonic() - t
        time.sleep(0.2)
    return None


def box_dir(name):
    return os.path.join(A.work, name)


def box_pid(name):
    with open(os.path.join(box_dir(name), "pid")) as f:
        return int(f.read())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] not in "ZX"
    except FileNotFoundError:
        return False


def kill9(name):
    pid = box_pid(name)
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.02)


def start_box(name):
    """Starts a box again with the command fleet-test.sh started it with (same port)."""
    with open(os.path.join(box_dir(name), "cmd")) as f:
        argv = f.read().splitlines()
    logf = open(os.path.join(box_dir(name), "log"), "a")
    logf.write(f"----- restarted by fleet_check.py\n")
    logf.flush()
    p = subprocess.Popen(argv, cwd=box_dir(name), stdin=subprocess.DEVNULL, stdout=logf,
                         stderr=subprocess.STDOUT, start_new_session=True)
    with open(os.path.join(box_dir(name), "pid"), "w") as f:
        f.write(f"{p.pid}\n")
    return p


def spawn_serve(args, logpath, timeout=90):
    """Starts `ocrbox serve ARGS --listen 127.0.0.1:0 --workers 1` (a box outside HAProxy);
    returns (process, base URL) once it prints "listening on ADDR"."""
    logf = open(logpath, "w")
    p = subprocess.Popen([A.bin, "serve", *args, "--listen", "127.0.0.1:0", "--workers", "1"],
                         cwd=os.path.dirname(logpath), stdin=subprocess.DEVNULL, stdout=logf,
                         stderr=subprocess.STDOUT, start_new_session=True)
    t = time.monotonic()
    while time.monotonic() - t < timeout and p.poll() is None:
        with open(logpath, errors="replace") as f:
            m = re.search(r"listening on ([0-9.:]+)", f.read())
        if m:
            return p, f"http://{m.group(1)}"
        time.sleep(0.1)
    p.kill()
    with open(logpath, errors="replace") as f:
        raise RuntimeError(f"ocrbox serve {' '.join(args)} did not start: {f.read()[-800:]}")


def stop_serve(p):
    p.terminate()
    try:
        return p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def box_log_tail(name, lines=15):
    with open(os.path.join(box_dir(name), "log"), errors="replace") as f:
        return "".join(f.readlines()[-lines:])


# ---------------------------------------------------------------- tasks and load

class Task:
    def __init__(self, key, tid, box, submitted):
        self.key, self.tid, self.box, self.submitted = key, tid, box, submitted
        self.final = None  # "ok" | "fail" | "404" | "error"
        self.text = None
        self.final_at = None
        self.final_box = None
        self.polls = []  # (box, status, result-or-None)
        self.last = None

    def __repr__(self):
        return (f"task {self.tid} (submitted on {self.box} at {self.submitted - T0:.1f}s): "
                f"{self.final or 'in_process'}; last poll {self.last!r}")


def settle(task, deadline, wait=5, base=None):
    """Polls `task` (through HAProxy unless `base`) until it ends or `deadline` (monotonic)."""
    while task.final is None and time.monotonic() < deadline:
        w = max(0, min(wait, int(deadline - time.monotonic())))
        r = result(base or H, task.key, task.tid, wait=w)
        task.last = r
        task.polls.append((r.box, r.status, r.get("result")))
        if r.status == 200 and r.get("result") != "in_process":
            task.final = "ok" if r.get("status") == "ok" else "fail"
            task.text = r.get("result")
        elif r.status == 404:
            task.final = "404"
        elif r.status in (None, 502, 503, 504):
            time.sleep(0.3)  # a box gone or the database down: poll again
            continue
        elif r.status != 200:
            task.final = "error"
        if task.final:
            task.final_at, task.final_box = time.monotonic(), r.box
    return task.final


class Load:
    """Client threads that submit `image` through HAProxy, each with at most `pending` tasks of
    its own not yet ended, and poll them (round robin, short long-polls) to their end, until
    stop(); every submit outcome is tallied."""

    def __init__(self, key, threads, image, pending=2):
        self.key, self.image, self.max_pending = key, image, pending
        self.tasks, self.lock = [], threading.Lock()
        self.tally = collections.Counter()
        self.bad = []  # answers that are never acceptable (500, 503 without Retry-After, ...)
        self.lost = []  # submits without an answer (a box may have taken them)
        self.stopping = threading.Event()
        self.settle_by = None
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def note_bad(self, r):
        with self.lock:
            self.bad.append(repr(r))

    def report(self):
        ends = collections.Counter(t.final or "in_process" for t in self.tasks)
        log(f"  load: submits {dict(self.tally)}, tasks ended {dict(ends)}")
        for line in self.lost[:5]:
            log(f"    submit without answer {line}")

    def run(self):
        pending = collections.deque()
        while True:
            if self.settle_by and time.monotonic() > self.settle_by:
                return
            if not self.stopping.is_set() and len(pending) < self.max_pending:
                r = submit(H, self.key, self.image, timeout=30)
                with self.lock:
                    self.tally[r.status or "no answer"] += 1
                    if r.status in (None, 502, 504):
                        self.lost.append(f"at {time.monotonic() - T0:.1f}s: {r!r}")
                if r.status == 200 and r.get("task_id"):
                    t = Task(self.key, r.get("task_id"), r.box, time.monotonic())
                    with self.lock:
                        self.tasks.append(t)
                    pending.append(t)
                    continue
                if r.status == 503:
                    if r.retry_after() is None:
                        self.note_bad(r)
                elif r.status not in (None, 502, 504):
                    self.note_bad(r)
                if not pending:
                    time.sleep(0.3)
            if not pending:
                if self.stopping.is_set():
                    return
                continue
            t = pending.popleft()
            settle(t, time.monotonic() + 3, wait=1)
            if t.final is None:
                pending.append(t)
            elif t.final == "error":
                self.note_bad(t.last)

    def stop(self, settle_by):
        """Stops submitting; the threads poll their tasks until `settle_by` at most."""
        self.settle_by = settle_by
        self.stopping.set()
        for t in self.threads:
            t.join(max(1, settle_by - time.monotonic() + 30))

    def unanswered(self):
        return sum(n for s, n in self.tally.items() if s in ("no answer", 502, 504))

    def wait_ok(self, timeout):
        """Waits until some task of this load has ended ok; returns it (or None)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.lock:
                done = next((t for t in self.tasks if t.final == "ok"), None)
            if done:
                return done
            time.sleep(0.2)
        return None


def audit(key, initial, tasks, unanswered, label):
    """The ledger audit (see the module's doc) and no task or row left in_process."""
    stuck = [t for t in tasks if t.final is None]
    check(not stuck, f"{label}: every accepted task ended (ok, fail or 404), none in_process "
          f"({len(tasks)} tasks)", "; ".join(map(repr, stuck[:5])))
    errors = [t for t in tasks if t.final == "error"]
    check(not errors, f"{label}: no poll answered an unexpected status", "; ".join(map(repr, errors[:5])))
    early404 = [t for t in tasks if t.final == "404" and t.final_at - t.submitted < A.task_ttl - 1]
    check(not early404, f"{label}: no task 404 before its {A.task_ttl} s lifetime",
          "; ".join(map(repr, early404[:5])))
    # A task must end ok or fail while it lives: one that answers in_process for its whole
    # lifetime and then 404 was left behind by its box (its result neither charged nor failed).
    expired = [t for t in tasks if t.final == "404"]
    check(not expired, f"{label}: every accepted task ended ok or fail before it expired "
          f"({len(expired)} stayed in_process for their {A.task_ttl} s, then 404)",
          "; ".join(f"{t.tid} (submitted on {t.box} at {t.submitted - T0:.1f}s)" for t in expired[:8]))
    bad_text = [t for t in tasks if t.final == "ok" and "memory leak" not in (t.text or "")]
    check(not bad_text, f"{label}: every ok result has the right text", "; ".join(map(repr, bad_text[:3])))
    b = balance(H, key)
    for _ in range(50):
        if b.status == 200:
            break
        time.sleep(0.2)
        b = balance(H, key)
    if not check(b.status == 200, f"{label}: balance answers after the scenario", repr(b)):
        return
    ok = sum(t.final == "ok" for t in tasks)
    fail = sum(t.final == "fail" for t in tasks)
    unknown = sum(t.final in (None, "404", "error") for t in tasks) + unanswered
    charged = initial - b.get("solves")
    log(f"  audit {label}: charged {charged} (= {initial} - {b.get('solves')}), seen ok {ok}, "
        f"seen fail {fail}, unknown {unknown} (never seen ended {unknown - unanswered}, "
        f"submits without answer {unanswered}), 24h {b.get('24h')}")
    check(ok <= charged <= ok + unknown,
          f"{label}: seen ok ({ok}) <= charged ({charged}) <= seen ok + unknown ({ok + unknown})")
    check(b.get("24h") == charged, f"{label}: 24h ({b.get('24h')}) == charged ({charged})")
    rows = psql("SELECT count(*) FROM tasks WHERE state = 'in_process' AND expires > now()")
    check(rows == "0", f"{label}: no live row in_process in table tasks (psql: {rows})",
          psql("SELECT id, box, created, expires - now() FROM tasks WHERE state = 'in_process' LIMIT 5"))
    # Expired rows are the boxes' to delete (every heartbeat, 2 s): give them two.
    t = time.monotonic()
    while (rows := psql("SELECT count(*) FROM tasks WHERE state = 'in_process'")) != "0" and time.monotonic() - t < 5:
        time.sleep(0.5)
    check(rows == "0", f"{label}: no row in_process at all in table tasks, expired ones deleted "
          f"(psql: {rows} after {time.monotonic() - t:.1f}s)",
          psql("SELECT id, box, created, expires - now() FROM tasks WHERE state = 'in_process' LIMIT 5"))


def read_fixture(name):
    with open(os.path.join(A.fixtures, name), "rb") as f:
        return f.read()


# ---------------------------------------------------------------- scenarios

def scenario_a():
    """The spec's flows through the balancer."""
    line = read_fixture("line_001.png")
    key = add_key(10, "fleet-a")
    bal = balance(H, key)
    check(bal.status == 200 and bal.doc == {"status": "ok", "solves": 10, "24h": 0},
          'balance through HAProxy: {"status":"ok","solves":10,"24h":0}', repr(bal))
    for name, base in BOXES.items():
        r = balance(base, key)
        check(r.status == 200 and r.doc == bal.doc, f"{name} directly: the same balance", repr(r))

    # Submit on one box, poll (round robin) until a box other than the submit's reads the text.
    sub = submit(H, key, line)
    check(sub.status == 200 and sub.get("status") == "ok" and sub.get("result") == "in_process"
          and isinstance(sub.get("task_id"), str) and isinstance(sub.get("solves"), int),
          f"submit through HAProxy: in_process with a task_id (answered by {sub.box})", repr(sub))
    tid = sub.get("task_id")
    seen_boxes, final = [sub.box], None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = result(H, key, tid)
        seen_boxes.append(r.box)
        if r.status != 200:
            check(False, "poll through HAProxy answers 200", repr(r))
            break
        if r.get("result") != "in_process":
            final = r
            if r.box != sub.box:
                break
        time.sleep(0.5)
    log(f"  submit answered by {sub.box}; polls by {', '.join(map(str, seen_boxes[1:]))}")
    check(final is not None and final.box != sub.box,
          f"the finished result was read on a box ({final and final.box}) other than the submit's ({sub.box})")
    check(len(set(seen_boxes)) >= 2, f"submit and polls were answered by {len(set(seen_boxes))} boxes (>= 2)")
    if final is not None:
        check(final.get("status") == "ok" and "memory leak" in final.get("result", "")
              and final.get("task_id") == tid and isinstance(final.get("time"), float)
              and final.get("solves") == 9,
              f"result: ok, {final.get('result')!r} contains 'memory leak', time {final.get('time')}, solves 9",
              repr(final))
    for name, base in [("HAProxy", H), *BOXES.items()]:
        r = balance(base, key)
        check(r.doc == {"status": "ok", "solves": 9, "24h": 1},
              f"balance on {name} after one success: solves 9, 24h 1", repr(r))

    # Errors through the balancer.
    bad = "0" * 40
    for r in (balance(H, bad), submit(H, bad, line), result(H, bad, tid)):
        check(r.status == 401 and r.get("status") == "fail", f"bad key: {r.method} {r.url.split('?')[0].replace(H, '')} -> 401", repr(r))
    empty = add_key(0, "fleet-a-empty")
    for name, base in [("HAProxy", H), *BOXES.items()]:
        r = submit(base, empty, line)
        check(r.status == 402 and r.get("status") == "fail", f"key with 0 solves: submit on {name} -> 402", repr(r))
    r = result(H, key, "00000000-0000-4000-8000-000000000000")
    check(r.status == 404, "unknown task id -> 404", repr(r))

    # wait= long-poll through the balancer, then on a box other than the one that took it.
    for where in ("HAProxy", "another box"):
        sub = submit(H, key, line)
        if not check(sub.status == 200, f"submit for the long-poll ({where})", repr(sub)):
            continue
        other = next(n for n in BOXES if n != sub.box)
        base = H if where == "HAProxy" else BOXES[other]
        r = result(base, key, sub.get("task_id"), wait=25)
        check(r.status == 200 and r.get("status") == "ok" and "memory leak" in r.get("result", "")
              and r.elapsed < 20,
              f"wait=25 on {where} ({r.box or other}; submitted on {sub.box}) answered the text "
              f"in {r.elapsed:.2f}s, not in_process", repr(r))
    b = balance(H, key)
    check(b.doc == {"status": "ok", "solves": 7, "24h": 3}, "balance after three successes: solves 7, 24h 3", repr(b))

    # Credit and revoke on the CLI: every box sees them at once.
    keys("credit", key, "+5")
    rs = {n: balance(base, key) for n, base in BOXES.items()}
    check(all(r.get("solves") == 12 for r in rs.values()), "keys credit +5: every box says 12 at once",
          "; ".join(f"{n}: {r!r}" for n, r in rs.items()))
    keys("credit", key, "=3")
    rs = {n: balance(base, key) for n, base in BOXES.items()}
    check(all(r.get("solves") == 3 for r in rs.values()), "keys credit =3: every box says 3 at once",
          "; ".join(f"{n}: {r!r}" for n, r in rs.items()))
    listed = keys("list", "--json")
    check(key[:8] in listed and "fleet-a" in listed, "keys list --json names the key", listed[:300])
    keys("revoke", key)
    t = time.monotonic()
    rs = {n: balance(base, key) for n, base in BOXES.items()}
    via = [balance(H, key) for _ in range(3)] + [submit(H, key, line) for _ in range(3)]
    check(all(r.status == 401 for r in rs.values()),
          f"revoke: 401 from all three boxes directly, at once ({time.monotonic() - t:.2f}s after the CLI)",
          "; ".join(f"{n}: {r!r}" for n, r in rs.items()))
    check(all(r.status == 401 for r in via) and len({r.box for r in via}) == 3,
          f"revoke: 401 through HAProxy, from boxes {sorted({str(r.box) for r in via})}", "; ".join(map(repr, via)))


def scenario_m():
    """From one box to a fleet: `ledger copy` of a single box's redb file into an empty
    PostgreSQL ledger (keys, balances, 24 h usage; secrets stay hashed), a box on it accepts
    the old keys; `backup --ledger` and `ledger copy` back to redb give the same keys."""
    line = read_fixture("line_001.png")
    d = os.path.join(A.work, "single")
    os.makedirs(d, exist_ok=True)
    db = os.path.join(d, "ocrbox.redb")
    k1 = cli("keys", "--db", db, "add", "--solves", "5", "--name", "shop").strip()
    k2 = cli("keys", "--db", db, "add", "--solves", "7", "--name", "gone").strip()
    cli("keys", "--db", db, "revoke", k2)
    p, base = spawn_serve(["--db", db], os.path.join(d, "single.log"))
    try:
        for _ in range(2):
            sub = submit(base, k1, line)
            t = Task(k1, sub.get("task_id"), "single", time.monotonic())
            check(sub.status == 200 and settle(t, time.monotonic() + 30, wait=25, base=base) == "ok",
                  "the single redb box reads a line", f"{sub!r} {t!r}")
        b = balance(base, k1)
        check(b.doc == {"status": "ok", "solves": 3, "24h": 2}, "single box: solves 3, 24h 2", repr(b))
    finally:
        check(stop_serve(p) == 0, "the single box stops cleanly on SIGTERM")

    def listing(*where):
        rows = json.loads(cli("keys", *where, "list", "--json"))
        return sorted(rows, key=lambda r: r["id"])

    before = listing("--db", db)
    cli("ledger", "copy", "--from", db, "--to", A.ledger_copy)
    copied = listing("--ledger", A.ledger_copy)
    check(copied == before, "ledger copy redb -> PostgreSQL: the same keys, names, balances, 24h, "
          "created, revoked", f"redb {before}\n          postgres {copied}")
    r = subprocess.run([A.bin, "ledger", "copy", "--from", db, "--to", A.ledger], capture_output=True, text=True)
    check(r.returncode != 0, "ledger copy into a ledger that has keys is refused",
          f"exit {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
    p, base = spawn_serve(["--ledger", A.ledger_copy], os.path.join(d, "fleetbox.log"))
    try:
        b1, b2 = balance(base, k1), balance(base, k2)
        check(b1.doc == {"status": "ok", "solves": 3, "24h": 2},
              "a box on the copied ledger takes the old key: solves 3, 24h 2", repr(b1))
        check(b2.status == 401, "... and refuses the revoked one (401)", repr(b2))
    finally:
        stop_serve(p)
    out = os.path.join(d, "backup.redb")
    cli("backup", "--ledger", A.ledger_copy, out)
    check(listing("--db", out) == before, "backup --ledger: a redb file with the same keys")
    back = os.path.join(d, "back.redb")
    cli("ledger", "copy", "--from", A.ledger_copy, "--to", back)
    check(listing("--db", back) == before, "ledger copy PostgreSQL -> redb: the same keys")


def scenario_b():
    """300 concurrent submits on a key with 100 credits."""
    line = read_fixture("line_001.png")
    credits, threads, per_thread = 100, 60, 5
    key = add_key(credits, "fleet-b")
    barrier = threading.Barrier(threads)
    tasks, lock = [], threading.Lock()
    tally, by_box, bad, b503 = collections.Counter(), collections.Counter(), [], []

    def client():
        mine = []
        barrier.wait()
        for _ in range(per_thread):
            r = submit(H, key, line, timeout=60)
            with lock:
                tally[r.status or "no answer"] += 1
                if r.status == 200:
                    by_box[r.box] += 1
                elif r.status == 503:
                    b503.append(r.get("detail"))
                    if r.retry_after() is None:
                        bad.append(repr(r))
                elif r.status not in (402, 503):
                    bad.append(repr(r))
            if r.status == 200:
                mine.append(Task(key, r.get("task_id"), r.box, time.monotonic()))
        for t in mine:
            settle(t, t.submitted + A.task_ttl + 5, wait=25)
        with lock:
            tasks.extend(mine)

    t0 = time.monotonic()
    ths = [threading.Thread(target=client) for _ in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    ends = collections.Counter(t.final or "in_process" for t in tasks)
    log(f"  tally of {threads * per_thread} submits in {time.monotonic() - t0:.1f}s: "
        f"{dict(tally)} (accepted per box {dict(by_box)}); accepted tasks ended {dict(ends)}")
    if tally[503]:
        details = collections.Counter(b503)
        log(f"  NOTE {tally[503]} submits got 503 (allowed: queue full or database busy; nothing "
            f"charged): {dict(details)}")
    else:
        log("  no submit got 503 (queue full / database busy)")
    check(not bad, "every submit answered 200, 402 or 503 with Retry-After", "; ".join(bad[:5]))
    check(ends["ok"] == credits, f"exactly {credits} tasks ended ok ({ends['ok']})")
    check(set(ends) <= {"ok", "fail"}, "every other accepted task ended fail (none in_process, 404 or error)",
          "; ".join(repr(t) for t in tasks if t.final not in ("ok", "fail"))[:1000])
    check(tally[200] + tally[402] + tally[503] == threads * per_thread,
          f"every submit was accepted ({tally[200]}), 402 ({tally[402]}) or 503 ({tally[503]})")
    check(len(by_box) == 3, f"the accepted submits landed on all three boxes: {dict(by_box)}")
    b = balance(H, key)
    check(b.doc == {"status": "ok", "solves": 0, "24h": credits}, f"balance: solves 0, 24h {credits}", repr(b))
    bad_text = [t for t in tasks if t.final == "ok" and "memory leak" not in (t.text or "")]
    check(not bad_text, "every ok result has the right text", "; ".join(map(repr, bad_text[:3])))


def scenario_e():
    """Throughput: three boxes behind HAProxy vs one box alone, same client load."""
    line = read_fixture("line_001.png")
    key = add_key(100000, "fleet-e")
    images, clients = 60, 6

    def run(base):
        todo, lock, done, by_box, errs = [images], threading.Lock(), [], collections.Counter(), []

        def client():
            while True:
                with lock:
                    if todo[0] == 0:
                        return
                    todo[0] -= 1
                while True:
                    r = submit(base, key, line)
                    if r.status != 503:
                        break
                    time.sleep(0.2)
                if r.status != 200:
                    errs.append(repr(r))
                    continue
                t = Task(key, r.get("task_id"), r.box, time.monotonic())
                settle(t, time.monotonic() + A.task_ttl, wait=25, base=base)
                with lock:
                    if t.final == "ok":
                        done.append(time.monotonic())
                        by_box[r.box] += 1
                    else:
                        errs.append(repr(t))

        t0 = time.monotonic()
        ths = [threading.Thread(target=client) for _ in range(clients)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        elapsed = (max(done) if done else time.monotonic()) - t0
        check(not errs and len(done) == images, f"all {images} images read ({len(done)})", "; ".join(errs[:3]))
        return len(done) / elapsed, elapsed, by_box

    # Warm-up: every box reads a few lines first (first inference allocates its plans).
    warm = [Task(key, submit(base, key, line).get("task_id"), n, time.monotonic())
            for n, base in BOXES.items() for _ in range(2)]
    for t in warm:
        settle(t, time.monotonic() + 30, wait=25)
    one = next(iter(BOXES))
    load_before = "/".join(f"{x:.1f}" for x in os.getloadavg())
    r1, e1, _ = run(BOXES[one])
    r3, e3, by_box = run(H)
    cores = os.cpu_count()
    log(f"  THROUGHPUT ({cores} CPU cores on this machine, shared by the boxes, HAProxy, PostgreSQL "
        f"and this client; {images} line images, {clients} clients each submit + long-poll; "
        f"load average before {load_before}):")
    log(f"    one box alone ({one}, 1 worker):         {r1:5.2f} images/s ({e1:.1f}s)")
    log(f"    three boxes behind HAProxy (1 worker each): {r3:5.2f} images/s ({e3:.1f}s; per box {dict(by_box)})")
    log(f"    ratio {r3 / r1:.2f}x (bounded by the {cores} cores, not by the number of boxes)")


def scenario_c():
    """kill -9 of one box mid-load."""
    line = read_fixture("line_001.png")
    initial, victim = 100000, "box2"
    key = add_key(initial, "fleet-c")
    load = Load(key, threads=8, image=line)
    time.sleep(4)
    with load.lock:
        inflight = [t for t in load.tasks if t.box == victim and t.final is None]
    kill9(victim)
    t_kill = time.monotonic()
    with load.lock:  # tasks accepted between the snapshot and the kill
        inflight += [t for t in load.tasks if t.box == victim and t.final is None and t not in inflight]
    log(f"  kill -9 {victim} (pid gone) with {len(inflight)} of its tasks in flight "
        f"({len(load.tasks)} accepted so far)")
    out = wait_haproxy({victim: "DOWN"}, 15)
    check(out is not None, f"HAProxy took {victim} out after {out and round(out, 1)}s", repr(haproxy_states()))
    time.sleep(4)
    settle_by = t_kill + 15 + A.task_ttl
    load.stop(settle_by)
    # The killed box's tasks: failed (uncharged) by the other boxes' heartbeat check.
    for t in inflight:
        settle(t, settle_by)
    late = [t for t in inflight if t.final not in ("ok", "fail") or t.final_at - t_kill > 15]
    if inflight:
        took = max(t.final_at - t_kill for t in inflight if t.final_at) if any(t.final_at for t in inflight) else None
        ends = collections.Counter(t.final or "in_process" for t in inflight)
        log(f"  the killed box's {len(inflight)} tasks in flight ended {dict(ends)}, "
            f"the last {took and round(took, 1)}s after the kill")
    check(not late, f"every task in flight on {victim} ended ok or fail within 15 s of the kill",
          "; ".join(map(repr, late[:5])))
    check(all(t.final_box != victim for t in inflight if t.final), "... answered by the other boxes")
    load.report()
    check(not load.bad, "no 500 or other unexpected answer during the kill", "; ".join(load.bad[:5]))
    audit(key, initial, load.tasks, load.unanswered(), "kill -9")

    # The killed box comes back on its port and serves again.
    t = time.monotonic()
    start_box(victim)
    while time.monotonic() - t < 90 and healthz(BOXES[victim], timeout=2).status != 200:
        time.sleep(0.3)
    up = wait_haproxy({victim: "UP"}, 20)
    check(up is not None, f"{victim} restarted: healthy after {time.monotonic() - t:.1f}s, back UP in HAProxy",
          f"{haproxy_states()!r}\n{box_log_tail(victim)}")
    sub = submit(BOXES[victim], key, line)
    tk = Task(key, sub.get("task_id"), victim, time.monotonic())
    check(sub.status == 200 and settle(tk, time.monotonic() + 30, wait=25, base=BOXES[victim]) == "ok",
          f"{victim} restarted: reads a line again", f"{sub!r} {tk!r}")
    boxes = {balance(H, key).box for _ in range(6)}
    check(victim in boxes, f"HAProxy sends requests to {victim} again ({sorted(map(str, boxes))})")


def scenario_d():
    """PostgreSQL stopped and restarted mid-load."""
    line = read_fixture("line_001.png")
    initial = 100000
    key = add_key(initial, "fleet-d")
    load = Load(key, threads=6, image=line)
    known = load.wait_ok(20)
    check(known is not None, "the load reads lines before the outage")
    time.sleep(2)
    took = pgctl("stop", "-m", "fast")
    t_down = time.monotonic()
    log(f"  PostgreSQL stopped (pg_ctl stop -m fast, {took:.1f}s), held down ~6 s")
    seen, wrong, plock = collections.Counter(), [], threading.Lock()

    def probe(name, base):
        """Asks `base` everything, again and again, while the database is down."""
        while time.monotonic() - t_down < 6:
            rs = [("healthz", healthz(base)), ("balance", balance(base, key, timeout=15)),
                  ("solve", submit(base, key, line, timeout=15))]
            if known:
                rs.append(("result", result(base, key, known.tid, timeout=15)))
            for what, r in rs:
                bad = None
                if r.status is None or r.elapsed > 12:
                    bad = "hang or no answer"
                elif what == "healthz":
                    bad = r.status != 503
                elif what == "result" and r.status == 200 and r.get("status") == "ok":
                    pass  # a finished result the box still holds is a fine answer
                elif r.status != 503 or r.retry_after() is None or r.get("status") != "fail":
                    bad = True
                src = ("box directly" if name != "HAProxy" else
                       "HAProxy from a box" if r.box else "HAProxy itself")
                with plock:
                    seen[f"{what} {r.status} ({src})"] += 1
                    if bad:
                        wrong.append(f"{name} {what}: {r!r}")
            time.sleep(0.5)

    probes = [threading.Thread(target=probe, args=nb) for nb in [*BOXES.items(), ("HAProxy", H)]]
    for t in probes:
        t.start()
    for t in probes:
        t.join()
    probes = sum(seen.values())
    log(f"  during the outage, {probes} probes of the three boxes and HAProxy:")
    for what, n in sorted(seen.items()):
        log(f"    {n:3d} x {what}")
    check(not wrong, "database down: 503 with Retry-After (healthz 503), no 500, no hang",
          "\n          ".join(wrong[:8]))

    def recovery(label):
        t = time.monotonic()
        pending = dict(BOXES)
        while pending and time.monotonic() - t < 30:
            for name in list(pending):
                if balance(pending[name], key, timeout=10).status == 200:
                    log(f"    {name} answers again {time.monotonic() - t:.1f}s after {label}")
                    del pending[name]
            time.sleep(0.2)
        check(not pending, f"every box recovered by itself after {label} (no box restarted)",
              "; ".join(f"{n}: {balance(b, key)!r}" for n, b in pending.items()))
        up = wait_haproxy({n: "UP" for n in BOXES}, 20)
        check(up is not None, f"HAProxy has all three boxes UP again {time.monotonic() - t:.1f}s after {label}",
              repr(haproxy_states()))

    pgctl("start")
    t_up = time.monotonic()
    log(f"  PostgreSQL started again after {t_up - t_down:.1f}s down")
    recovery("the start")
    time.sleep(3)
    took = pgctl("restart", "-m", "fast")
    t_restart = time.monotonic()
    log(f"  pg_ctl restart -m fast mid-load ({took:.1f}s)")
    recovery("the restart")
    time.sleep(2)
    load.stop(t_restart + 15 + A.task_ttl)
    load.report()
    check(not load.bad, "the load saw no 500 or 503 without Retry-After", "; ".join(load.bad[:5]))
    audit(key, initial, load.tasks, load.unanswered(), "PostgreSQL outage")
    pids = {n: alive(box_pid(n)) for n in BOXES}
    check(all(pids.values()), f"no box died or was restarted: {pids}")


SCENARIOS = {"a": ("spec flows through the balancer", scenario_a),
             "m": ("from one box to a fleet: ledger copy, backup", scenario_m),
             "b": ("300 concurrent submits, 100 credits", scenario_b),
             "e": ("throughput: one box vs three behind HAProxy", scenario_e),
             "c": ("kill -9 of a box mid-load", scenario_c),
             "d": ("PostgreSQL outage and restart mid-load", scenario_d)}


def main():
    global A, H, SCENARIO
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--haproxy", required=True)
    p.add_argument("--stats-socket", required=True)
    p.add_argument("--box", action="append", required=True, help="NAME=HOST:PORT, as HAProxy names it")
    p.add_argument("--work", required=True, help="fleet-test.sh's temp dir (WORK/NAME/{cmd,pid,log})")
    p.add_argument("--bin", required=True)
    p.add_argument("--ledger", required=True)
    p.add_argument("--ledger-copy", required=True, help="an empty database for scenario m")
    p.add_argument("--psql", required=True)
    p.add_argument("--pgctl", required=True)
    p.add_argument("--fixtures", required=True)
    p.add_argument("--task-ttl", type=int, default=30)
    p.add_argument("scenarios", nargs="*", default=list("ambecd"))
    A = p.parse_args()
    H = A.haproxy.rstrip("/")
    for b in A.box:
        name, addr = b.split("=", 1)
        BOXES[name] = f"http://{addr}"
    unknown = [s for s in A.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenarios {unknown}; known: {' '.join(SCENARIOS)}")

    SCENARIO = "setup"
    ready = wait_haproxy({n: "UP" for n in BOXES}, 30)
    if not check(ready is not None, "HAProxy sees the three boxes UP", repr(haproxy_states())):
        return 1
    first = []
    for n in BOXES:
        with open(os.path.join(box_dir(n), "log"), errors="replace") as f:
            if re.search(r"^\s+[0-9a-f]{40}$", f.read(), re.M):
                first.append(n)
    check(len(first) == 1, f"exactly one of the boxes started together on the empty ledger "
          f"created a first key ({first})")
    for s in A.scenarios:
        SCENARIO = s
        title, fn = SCENARIOS[s]
        log(f"== {s}. {title}")
        t = time.monotonic()
        try:
            fn()
        except Exception as e:  # a broken step fails its scenario; the next ones still run
            import traceback
            traceback.print_exc()
            check(False, f"scenario {s} stopped on {type(e).__name__}: {e}")
        log(f"== {s}. done in {time.monotonic() - t:.1f}s")
    print()
    if FAILURES:
        print(f"fleet_check: {len(FAILURES)} FAILED checks:")
        for f in FAILURES:
            print(f"  - {f}")
        return 1
    print(f"fleet_check: every check passed ({' '.join(A.scenarios)}) in {time.monotonic() - T0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
