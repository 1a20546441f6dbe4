#!/usr/bin/env bash
# Balance latency while solves are charged, with the database on a deliberately slow disk.
#
#   sudo scripts/bench-ledger-latency.sh [-b BINARY] [-d DURATION] [-c CONNECTIONS]
#        [-f FLOOD_CLIENTS] [-w WORKERS] [-m auto|dm|throttle|neighbour] [-s SLOWNESS]
#        [-o OHA] [IMAGE]
#
# Needs root (loop device, mount) and oha (`cargo install oha --locked`; -o or $PATH).
# Makes a 256 MiB ext4 on a loop device (image file in a temp dir) and slows its writes:
#   dm        dm-delay over the loop device, writes and flushes delayed SLOWNESS ms (default 50);
#   throttle  cgroup-v1 blkio throttle of the loop device to SLOWNESS write IOPS (default 50;
#             every writer of that device, none other; an fsync then costs ~100 ms);
#   neighbour a process writing SLOWNESS MiB (default 1) + fsync in a loop on the same ext4;
#   auto      the first of dm, throttle, neighbour that the kernel allows (the default).
# The fsync cost on that disk (16 KiB write + fsync, 20 times) is printed first. Then a
# database there gets a key of 10^6 solves, `ocrbox serve --workers WORKERS` (default 2) runs
# on 127.0.0.1:0, and `oha -z DURATION -c CONNECTIONS -w` (default 30s, 8) asks
# /api/balance twice: idle, then while FLOOD_CLIENTS (default 4) clients loop submit → poll
# every 50 ms with IMAGE (default tests/fixtures/digits_000040.png). Prints p50, p99, p99.9,
# max and req/s of the balance requests, their status codes, and the solves charged during
# the flood (balance before - after). Every loop ends with the run; the trap removes server,
# mount, devices and throttle. Loopback only.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/target/release/ocrbox" duration=30s conns=8 flood=4 workers=2 mode=auto slow=""
oha=$(command -v oha || true)
while getopts "b:d:c:f:w:m:s:o:h" opt; do
    case $opt in
        b) bin=$OPTARG ;;
        d) duration=$OPTARG ;;
        c) conns=$OPTARG ;;
        f) flood=$OPTARG ;;
        w) workers=$OPTARG ;;
        m) mode=$OPTARG ;;
        s) slow=$OPTARG ;;
        o) oha=$OPTARG ;;
        *) sed -n '2,22p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
image=${1:-$here/tests/fixtures/digits_000040.png}
[ -x "$bin" ] || { echo "no binary $bin (cargo build --release --locked)" >&2; exit 2; }
[ -n "$oha" ] && [ -x "$oha" ] || { echo "no oha (cargo install oha --locked; or -o PATH)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root: loop device, mount, dm-delay or blkio throttle" >&2; exit 2; }
case $duration in *[0-9]s) secs=${duration%s} ;; *) echo "duration like 30s" >&2; exit 2 ;; esac
[ -f "$image" ] || { echo "no image $image" >&2; exit 2; }

tmp=$(mktemp -d /tmp/ocrbox-ledger-bench.XXXXXX)
loop="" dm="" throttle="" mnt="$tmp/disk" pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt"; fi
    if [ -n "$dm" ]; then dmsetup remove "$dm" || true; fi
    if [ -n "$throttle" ]; then
        echo "$throttle 0" >/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device || true
    fi
    if [ -n "$loop" ]; then losetup -d "$loop" || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the slow disk -----------------------------------------------------------------------
truncate -s 256M "$tmp/disk.img"
loop=$(losetup -f --show "$tmp/disk.img")
dev=$loop
try_dm() {
    command -v dmsetup >/dev/null || return 1
    command -v modprobe >/dev/null && modprobe dm-delay 2>/dev/null
    local name="ocrbox-slow-$$" ms=${slow:-50}
    # delay <dev> <off> <read ms> <write dev> <off> <write ms> (flushes as writes)
    dmsetup create "$name" --table "0 $(blockdev --getsz "$loop") delay $loop 0 0 $loop 0 $ms" \
        2>/dev/null || return 1
    dm=$name dev=/dev/mapper/$name
    desc="dm-delay over $loop: reads 0 ms, writes ${ms} ms"
}
try_throttle() {
    local f=/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device iops=${slow:-50}
    [ -w "$f" ] || return 1
    local majmin; majmin=$(cat "/sys/block/${loop#/dev/}/dev")
    echo "$majmin $iops" >"$f" 2>/dev/null || return 1
    throttle=$majmin
    desc="$loop (${majmin}) with blkio throttle ${iops} write IOPS"
}
case $mode in
    dm) try_dm || { echo "dm-delay unavailable (no device-mapper or dm-delay in this kernel)" >&2; exit 1; } ;;
    throttle) try_throttle || { echo "blkio throttle unavailable (needs cgroup v1 blkio)" >&2; exit 1; } ;;
    neighbour) ;;
    auto) try_dm || try_throttle || mode=neighbour ;;
    *) echo "mode: auto, dm, throttle or neighbour" >&2; exit 2 ;;
esac
mkfs.ext4 -q -F "$dev"
mkdir -p "$mnt"
mount "$dev" "$mnt"
if [ "$mode" = neighbour ]; then
    mib=${slow:-1}
    # Bounded: stops by itself after the whole run could have ended, and the trap kills it.
    python3 - "$mnt/neighbour" "$((2 * secs + 120))" "$mib" <<'PY' &
import os, sys, time
path, secs, mib = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
buf, end = os.urandom(1 << 20), time.monotonic() + secs
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
while time.monotonic() < end:
    os.lseek(fd, 0, 0)
    for _ in range(mib):
        os.write(fd, buf)
    os.fsync(fd)
PY
    pids+=($!)
    desc="ext4 on $loop, neighbour writing ${mib} MiB + fsync in a loop"
fi
python3 - "$mnt/probe" <<'PY'
import os, sys, time
fd, ts = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), []
for i in range(20):
    os.pwrite(fd, os.urandom(16384), (i % 8) * 16384)
    t = time.perf_counter(); os.fsync(fd); ts.append((time.perf_counter() - t) * 1000)
os.close(fd); os.unlink(sys.argv[1]); ts.sort()
print(f"slow disk fsync (16 KiB): p50 {ts[10]:.1f} ms  max {ts[-1]:.1f} ms", end="")
PY
echo "   [$desc]"

# --- the server ----------------------------------------------------------------------------
db="$mnt/ocrbox.redb"
key=$("$bin" keys add --db "$db" --solves 1000000 --name bench 2>/dev/null)
OCRBOX_LOG=warn "$bin" serve --listen 127.0.0.1:0 --db "$db" --workers "$workers" \
    >"$tmp/out" 2>"$tmp/err" &
server=$!
pids+=("$server")
for _ in $(seq 600); do
    grep -q '^listening on ' "$tmp/out" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
    sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$addr" ] || { echo "server did not start" >&2; cat "$tmp/err" >&2; exit 1; }
url="http://$addr/api/balance?api=$key"
echo "server $bin on $addr, $workers workers; oha -z $duration -c $conns; flood $flood clients, $(basename "$image")"
load0=$(cut -d' ' -f1 /proc/loadavg)

solves() { curl -sf --max-time 30 "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["solves"])'; }

bench() { # label: runs oha, prints one line
    # -w: requests still open at the deadline are waited for and counted, not dropped.
    "$oha" -z "$duration" -c "$conns" -w --no-tui --output-format json "$url" \
        >"$tmp/oha.json" 2>"$tmp/oha.err" \
        || { cat "$tmp/oha.err" >&2; exit 1; }
    python3 - "$1" "$tmp/oha.json" <<'PY'
import json, sys
label, doc = sys.argv[1], json.load(open(sys.argv[2]))
s, p = doc["summary"], doc["latencyPercentiles"]
ms = lambda v: f"{v * 1000:.2f}" if v is not None else "-"
codes = " ".join(f"{k}:{v}" for k, v in sorted(doc.get("statusCodeDistribution", {}).items()))
errs = " ".join(f"{k!r}:{v}" for k, v in doc.get("errorDistribution", {}).items())
print(f"{label:<6} balance p50 {ms(p['p50'])} ms  p99 {ms(p['p99'])} ms  p99.9 {ms(p.get('p99.9'))} ms  "
      f"max {ms(s['slowest'])} ms  "
      f"{s['requestsPerSec']:.0f} req/s  [{codes}{f' errors {errs}' if errs else ''}]")
PY
}

bench idle

before=$(solves)
python3 - "$addr" "$key" "$flood" "$((secs + 3))" "$image" >"$tmp/flood.out" <<'PY' &
import http.client, json, sys, threading, time, uuid
addr, key, n, secs, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
blob, end = open(path, "rb").read(), time.monotonic() + secs
counts, lock = {"ok": 0, "fail": 0, "busy": 0, "other": 0}, threading.Lock()

def req(method, path, body=None, headers={}):
    c = http.client.HTTPConnection(addr, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.getheader("Retry-After"), json.loads(r.read() or b"{}")
    finally:
        c.close()

def client():
    while time.monotonic() < end:
        b = uuid.uuid4().hex
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"i.png\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + blob + f"\r\n--{b}--\r\n".encode()
        status, retry, doc = req("POST", f"/api/ocr/solve?api={key}", body,
                                 {"Content-Type": f"multipart/form-data; boundary={b}"})
        if status != 200:
            with lock: counts["busy" if status == 503 else "other"] += 1
            time.sleep(min(float(retry or 1), max(0.0, end - time.monotonic())))
            continue
        task = doc["task_id"]
        while time.monotonic() < end + 30:      # let the last task finish, bounded
            _, _, doc = req("GET", f"/api/ocr/result/{task}?api={key}")
            if doc.get("result") != "in_process":
                with lock: counts["ok" if doc.get("status") == "ok" else "fail"] += 1
                break
            time.sleep(0.05)

threads = [threading.Thread(target=client) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(" ".join(f"{k} {v}" for k, v in counts.items()))
PY
floodpid=$!
pids+=("$floodpid")
sleep 2                                             # the flood reaches its pace
bench flood
wait "$floodpid" || { echo "flood client failed" >&2; exit 1; }
after=$(solves)
charged=$((before - after))
echo "flood  solves charged $charged during ~$((secs + 3)) s ($(awk -v c=$charged -v s=$((secs + 3)) \
    'BEGIN { printf "%.1f", c / s }')/s); results: $(cat "$tmp/flood.out")"
echo "load average (1 min) $load0 at start, $(cut -d' ' -f1 /proc/loadavg) at end; $(nproc) cores"
