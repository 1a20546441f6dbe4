#!/usr/bin/env bash
# Benchmark the HTTP service end to end over loopback.
#
#   scripts/bench-http.sh [-n IMAGES] [-c CLIENTS] [-w WORKERS] [-b BINARY] [IMAGE...]
#
# Starts the release binary on 127.0.0.1 with a fresh database and a key, then C concurrent
# clients submit N images in total (cycling over IMAGE..., default tests/fixtures/line_001.png)
# and poll each every 50 ms until it is done. Prints throughput (images/s), p50/p99
# submit→result latency, and the server's peak RSS (VmHWM from /proc/PID/status).
# A 503 (queue full) is retried after its Retry-After; it counts in that image's latency.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
n=40 c=4 workers="" bin="$here/target/release/ocrbox"
while getopts "n:c:w:b:h" opt; do
    case $opt in
        n) n=$OPTARG ;;
        c) c=$OPTARG ;;
        w) workers=$OPTARG ;;
        b) bin=$OPTARG ;;
        *) sed -n '2,10p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
images=("$@")
[ ${#images[@]} -gt 0 ] || images=("$here/tests/fixtures/line_001.png")

if [ ! -x "$bin" ]; then
    echo "building $bin" >&2
    (cd "$here" && cargo build --release --locked)
fi

tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

key=$("$bin" keys add --db "$tmp/db.redb" --solves $((n + 10)) --name bench 2>/dev/null)
args=(serve --listen 127.0.0.1:0 --db "$tmp/db.redb" --queue 256)
[ -n "$workers" ] && args+=(--workers "$workers")
OCRBOX_LOG=warn "$bin" "${args[@]}" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 600); do
    grep -q '^listening on ' "$tmp/out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
    sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$addr" ] || { echo "server did not start" >&2; cat "$tmp/err" >&2; exit 1; }
echo "server pid $pid on $addr; $n images, $c clients, workers ${workers:-default}" >&2

python3 - "$addr" "$key" "$n" "$c" "${images[@]}" <<'PY'
import json, sys, threading, time, urllib.error, urllib.request, uuid

addr, key, n, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
blobs = [open(p, "rb").read() for p in sys.argv[5:]]
base = f"http://{addr}"

def call(req):
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.load(e)

def solve(blob):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"img\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    body += blob + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/api/ocr/solve?api={key}", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    t0 = time.monotonic()
    while True:
        status, headers, doc = call(req)
        if status == 503:
            time.sleep(float(headers.get("Retry-After", "1")))
            continue
        if status != 200:
            raise SystemExit(f"submit: {status} {doc}")
        break
    task = doc["task_id"]
    while True:
        _, _, doc = call(f"{base}/api/ocr/result/{task}?api={key}")
        if doc.get("result") != "in_process":
            return time.monotonic() - t0, doc["status"] == "ok"
        time.sleep(0.05)

lat, fails, lock, next_i = [], 0, threading.Lock(), [0]

def client():
    global fails
    while True:
        with lock:
            i = next_i[0]
            if i >= n:
                return
            next_i[0] += 1
        dt, ok = solve(blobs[i % len(blobs)])
        with lock:
            lat.append(dt)
            fails += not ok

t0 = time.monotonic()
threads = [threading.Thread(target=client) for _ in range(c)]
for t in threads: t.start()
for t in threads: t.join()
wall = time.monotonic() - t0
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
print(f"images      {len(lat)} ({fails} failed)")
print(f"throughput  {len(lat) / wall:.2f} images/s  ({wall:.1f} s wall)")
print(f"latency     p50 {pct(50) * 1000:.0f} ms   p99 {pct(99) * 1000:.0f} ms   (submit -> result)")
PY

echo "peak RSS    $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status")"
