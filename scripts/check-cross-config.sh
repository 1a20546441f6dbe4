#!/usr/bin/env bash
# Check that `cross` would read our cross.toml. cross looks for Cross.toml (capital C) in the
# workspace root or for the file named by CROSS_CONFIG, never for a lower-case cross.toml, so
# every documented command must name it.
#
#   scripts/check-cross-config.sh
#
# 1. cross.toml parses as TOML (python3 tomllib) and names a build.default-target.
# 2. Every line of README.md, cross.toml, scripts/README.md and scripts/*.sh that runs a
#    cross subcommand also sets CROSS_CONFIG=.
# 3. `scripts/build-release.sh --cross --dry-run`, started from another directory, exports
#    CROSS_CONFIG as an absolute path to this very file.
# 4. If cross is installed: with CROSS_CONFIG naming a broken copy, `cross --version` must fail
#    to parse it (so this cross reads the variable); with our file it must run with no parse
#    error, unused-key warning or "cross.toml ... won't be considered" warning. Without cross
#    this step is skipped.
# Exits 1 on any failure, 0 otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cfg="$root/cross.toml"
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
ok() { echo "ok:   $*"; }

[ -f "$cfg" ] || { echo "FAIL: no $cfg" >&2; exit 1; }
if [ -e "$root/Cross.toml" ] && ! [ "$root/Cross.toml" -ef "$cfg" ]; then
  bad "Cross.toml exists beside cross.toml: cross would read it whenever CROSS_CONFIG is unset"
fi

# 1. TOML
if target=$(python3 - "$cfg" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    doc = tomllib.load(f)
print(doc["build"]["default-target"])
PY
); then
  ok "cross.toml parses as TOML; build.default-target = $target"
else
  bad "cross.toml does not parse as TOML or has no build.default-target"
fi

# 2. Documented commands. A cross subcommand at a word start: `cross build`, `cross test`, ...
self=$(basename "$0")
docs=("$root/README.md" "$cfg")
[ -f "$root/scripts/README.md" ] && docs+=("$root/scripts/README.md")
for f in "$root"/scripts/*.sh; do [ "$(basename "$f")" = "$self" ] || docs+=("$f"); done
missing=$(grep -nE '(^|[[:space:]`(;&|])cross (build|test|run|check|clippy|rustc)( |$)' "${docs[@]}" \
  | grep -v 'CROSS_CONFIG=' || true)
if [ -n "$missing" ]; then
  bad "cross commands without CROSS_CONFIG=:"; echo "$missing" | sed "s|^$root/|      |" >&2
else
  ok "every documented cross command sets CROSS_CONFIG"
fi

# 3. The release script, run from elsewhere.
shown=$(cd / && "$root/scripts/build-release.sh" --cross --dry-run aarch64-unknown-linux-musl)
path=$(sed -n 's/^==> CROSS_CONFIG=\([^ ]*\) cross build .*/\1/p' <<<"$shown")
if [ -n "$path" ] && [ "${path:0:1}" = / ] && [ "$path" -ef "$cfg" ]; then
  ok "build-release.sh --cross exports CROSS_CONFIG=$path"
else
  bad "build-release.sh --cross does not export CROSS_CONFIG as the absolute path of cross.toml:"
  echo "$shown" >&2
fi

# 4. cross itself.
if ! command -v cross >/dev/null 2>&1; then
  echo "skip: cross is not installed (cargo install cross --locked), so step 4 did not run"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf '[build\n' > "$tmp/broken.toml"
  if (cd "$root" && CROSS_CONFIG="$tmp/broken.toml" cross --version) >"$tmp/neg" 2>&1; then
    bad "cross accepted a broken CROSS_CONFIG file: this cross ($(cross --version 2>/dev/null | grep -m1 '^cross ')) does not read the variable"
  else
    ok "cross reads the file CROSS_CONFIG names (a broken one fails: $(grep -m1 -iE 'toml|parse' "$tmp/neg" || echo 'non-zero exit'))"
  fi
  if (cd "$root" && CROSS_CONFIG=cross.toml cross --version) >"$tmp/pos" 2>&1 \
      && ! grep -qiE "failed to parse|unused key|unknown field|instead of Cross.toml|be considered" "$tmp/pos"; then
    ok "cross reads cross.toml cleanly ($(grep -m1 '^cross ' "$tmp/pos"))"
  else
    bad "cross with CROSS_CONFIG=cross.toml:"; sed 's/^/      /' "$tmp/pos" >&2
  fi
fi

exit "$fail"
