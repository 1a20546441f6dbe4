# shellcheck shell=bash
# Shared by the scripts that test the real binary from Python tools (browser-test.sh,
# metrics-test.sh, schemathesis.sh). Source it; each script keeps its own `say` and traps.

# pinned_venv VENV REQUIREMENTS: a venv with the pinned packages, rebuilt only when the
# requirements file changes.
pinned_venv() {
  local venv=$1 req=$2
  if ! cmp -s "$req" "$venv/requirements.txt" 2>/dev/null; then
    echo "creating $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
  fi
}

# stop PID: SIGTERM, then wait (the server finishes open requests, up to 10 s).
stop() {
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

# scratch: a temporary directory in $work, removed at exit together with the server whose PID
# the script puts in $server (stopped first). Ctrl-C and SIGTERM exit through the same cleanup.
scratch() {
  work="$(mktemp -d)"
  server=""
  trap 'stop "$server"; rm -rf "$work"' EXIT
  trap 'exit 130' INT TERM
}

# addr_of LOG PREFIX SECONDS: waits for a line "PREFIX ADDR" in LOG (`ocrbox serve` prints
# "listening on ADDR", and "metrics on ADDR"); prints ADDR.
addr_of() {
  local i addr
  for ((i = 0; i < $3 * 10; i++)); do
    addr=$(sed -n "s/.*$2 \([0-9.:]*\).*/\1/p" "$1" | head -1)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    sleep 0.1
  done
  return 1
}
