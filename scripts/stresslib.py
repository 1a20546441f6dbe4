"""Shared by scripts/crash-test.sh, soak.sh and flood.sh (python3 stdlib only).

Starts and kills `ocrbox serve`, makes keys, sends requests over fresh loopback connections,
reads the server's memory from /proc.

`db` is a redb file, or in fleet mode (`-L`) the PostgreSQL ledger's `postgres://` URL, which
stress-env.sh exports as STRESS_LEDGER (with STRESS_PSQL and STRESS_PGDATA for `psql` and
`pg_mem`).
"""
import http.client
import json
import os
import signal
import subprocess
import time
import uuid


def is_ledger(db):
    return db.startswith("postgres://")


def add_key(binary, db, solves, name):
    """`ocrbox keys add` (through the admin socket if a server runs; on the database itself
    with a ledger URL); returns the key."""
    if is_ledger(db):
        cmd = [binary, "keys", "--ledger", db, "add", "--solves", str(solves), "--name", name]
    else:
        cmd = [binary, "keys", "add", "--db", db, "--solves", str(solves), "--name", name]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def keys_list(binary, db):
    """`ocrbox keys list --json`: list of dicts (id, name, solves, last_24h, ...)."""
    if is_ledger(db):
        cmd = [binary, "keys", "--ledger", db, "list", "--json"]
    else:
        cmd = [binary, "keys", "list", "--json", "--db", db]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def psql(sql):
    """Runs `sql` on the fleet's ledger database with psql; its rows as lists of fields."""
    out = subprocess.run([os.environ["STRESS_PSQL"], "-X", "-A", "-t", "-F", "\t",
                          "-v", "ON_ERROR_STOP=1", "-d", os.environ["STRESS_LEDGER"], "-c", sql],
                         check=True, capture_output=True, text=True, timeout=60)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def pg_mem():
    """(RSS, PSS) in MiB summed over the PostgreSQL server's processes (the postmaster of
    STRESS_PGDATA and its children). RSS counts the shared buffers once per process that
    touched them; PSS shares them out."""
    with open(os.path.join(os.environ["STRESS_PGDATA"], "postmaster.pid")) as f:
        master = int(f.readline())
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(d))
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k == "Rss":
                        rss += int(v.split()[0])
                    elif k == "Pss":
                        pss += int(v.split()[0])
        except OSError:
            pass  # a backend that just ended
    return rss / 1024, pss / 1024


class Server:
    """One `ocrbox serve` on 127.0.0.1:0 (`--ledger` when `db` is a postgres:// URL; then it
    runs in `tmp`). Its pid goes to `tmp/NAME.pid` so the shell's trap can kill it if Python
    dies; its stderr is appended to `tmp/NAME.log`."""

    def __init__(self, binary, db, tmp, *args, name="server"):
        store = ["--ledger", db] if is_ledger(db) else ["--db", db]
        self.cmd = [binary, "serve", "--listen", "127.0.0.1:0", *store, *args]
        self.tmp, self.proc, self.addr, self.name = tmp, None, None, name
        self.cwd = tmp if is_ledger(db) else None
        self.log = os.path.join(tmp, f"{name}.log")
        self.pidfile = os.path.join(tmp, f"{name}.pid")

    def start(self, timeout=60):
        """Starts the server and waits for `listening on ADDR`. Raises if it exits first."""
        out = os.path.join(self.tmp, f"{self.name}.out")
        env = dict(os.environ, OCRBOX_LOG=os.environ.get("OCRBOX_LOG", "warn"))
        with open(out, "w") as o, open(self.log, "a") as e:
            self.proc = subprocess.Popen(self.cmd, stdout=o, stderr=e, env=env, cwd=self.cwd)
        with open(self.pidfile, "w") as f:
            f.write(str(self.proc.pid))
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with open(out) as f:
                for line in f:
                    if line.startswith("listening on "):
                        self.addr = line.split()[-1]
                        return time.monotonic() - t0
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.tail()}")
            time.sleep(0.02)
        raise RuntimeError(f"server not listening after {timeout} s: {self.tail()}")

    def tail(self, n=2000):
        with open(self.log, errors="replace") as f:
            return f.read()[-n:]

    def stop(self, sig=signal.SIGKILL, timeout=30):
        """Sends `sig` and reaps the process; returns its exit code (negative for a signal)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout) if self.proc else None
        os.remove(self.pidfile)
        return code

    def mem(self):
        """(VmRSS, VmHWM) in MiB."""
        vals = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    vals[k] = int(v.split()[0]) / 1024
        return vals["VmRSS"], vals["VmHWM"]


def multipart(blob, field="image"):
    """(body, content type) of a multipart/form-data upload of `blob` as `field`."""
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"img\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + blob
    return body + f"\r\n--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def call(addr, method, path, body=None, ctype=None, timeout=120):
    """One request on a fresh connection: (status, headers dict (lower-case), parsed JSON).
    Connection errors propagate (ConnectionRefusedError: nothing was sent)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Content-Type": ctype} if ctype else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {"unparsed": raw[:200].decode(errors="replace")}
        return r.status, {k.lower(): v for k, v in r.getheaders()}, doc
    finally:
        conn.close()


def submit(addr, key, blob, field="image", timeout=120):
    body, ctype = multipart(blob, field)
    return call(addr, "POST", f"/api/ocr/solve?api={key}", body, ctype, timeout)


def balance(addr, key):
    """(solves, 24h) from GET /api/balance."""
    status, _, doc = call(addr, "GET", f"/api/balance?api={key}")
    if status != 200:
        raise RuntimeError(f"balance: {status} {doc}")
    return doc["solves"], doc["24h"]


def pct(values, p):
    """The p-th percentile (nearest rank) of `values`, or None when empty."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
