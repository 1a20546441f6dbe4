#!/usr/bin/env bash
# Install ocrbox as a systemd service, on this machine or on a remote one.
#
#   scripts/install.sh [--binary PATH] [--host USER@HOST] [--no-start]
#   scripts/install.sh --uninstall [--purge] [--host USER@HOST]
#
# Local (run on the device, as root or through sudo): copies the binary to
# /usr/local/bin/ocrbox and scripts/ocrbox.service to
# /etc/systemd/system/ocrbox.service, creates /etc/default/ocrbox (settings, kept
# if present), then `systemctl enable --now ocrbox`.
#
# --host USER@HOST: copies the binary, the unit and this script to HOST with scp
#   and runs the local install there with sudo over ssh. Without --binary, the
#   binary is picked by the host's `uname -m` from target/dist/ (made by
#   scripts/build-release.sh): aarch64 -> ocrbox-aarch64-unknown-linux-musl,
#   armv7l -> ocrbox-armv7-unknown-linux-musleabihf, x86_64 -> ocrbox-x86_64-...
# --uninstall: stops and disables the service, removes binary and unit; the
#   database in /var/lib/ocrbox is kept unless --purge is given.
# --root DIR: install into DIR instead of / and skip systemctl (packaging/tests).
# SSH_OPTS: extra options for ssh and scp, e.g. SSH_OPTS="-o Port=2222".
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
orig_args=("$@")
binary=""
host=""
uninstall=0
purge=0
start=1
root=""

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --host) host="$2"; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    --no-start) start=0; shift ;;
    --root) root="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install.sh: $*"; }

target_for_arch() {
  case "$1" in
    aarch64|arm64) echo aarch64-unknown-linux-musl ;;
    armv7l|armv7*|armv8l) echo armv7-unknown-linux-musleabihf ;;
    x86_64|amd64) echo x86_64-unknown-linux-musl ;;
    *) echo "unsupported architecture: $1" >&2; return 1 ;;
  esac
}

default_binary() {
  local t
  t=$(target_for_arch "$1")
  local d="${CARGO_TARGET_DIR:-$here/../target}"
  for c in "$d/dist/ocrbox-$t" "$d/$t/dist/ocrbox" "$d/$t/release/ocrbox"; do
    [ -f "$c" ] && { echo "$c"; return 0; }
  done
  echo "no binary for $t: run scripts/build-release.sh $t, or pass --binary" >&2
  return 1
}

# ---- remote: copy everything over and run this script there ---------------
if [ -n "$host" ]; then
  remote_dir="/tmp/ocrbox-install.$$"
  read -r -a sshopts <<<"${SSH_OPTS:-}"
  args=()
  if [ "$uninstall" = 1 ]; then
    args+=(--uninstall)
    [ "$purge" = 1 ] && args+=(--purge)
    files=("$here/install.sh")
  else
    if [ -z "$binary" ]; then
      arch=$(ssh "${sshopts[@]}" "$host" uname -m)
      say "$host is $arch"
      binary=$(default_binary "$arch")
    fi
    files=("$here/install.sh" "$here/ocrbox.service" "$binary")
    args+=(--binary "$remote_dir/$(basename "$binary")")
    [ "$start" = 0 ] && args+=(--no-start)
  fi
  say "copying ${files[*]} to $host:$remote_dir"
  ssh "${sshopts[@]}" "$host" mkdir -p "$remote_dir"
  scp -q "${sshopts[@]}" "${files[@]}" "$host:$remote_dir/"
  say "running install.sh ${args[*]} on $host"
  # -t: sudo may ask for a password.
  ssh -t "${sshopts[@]}" "$host" "s=; [ \$(id -u) = 0 ] || s=sudo; \$s bash $remote_dir/install.sh ${args[*]}; rc=\$?; rm -rf $remote_dir; exit \$rc"
  exit $?
fi

# ---- local -----------------------------------------------------------------
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  exec sudo bash "$0" "${orig_args[@]}"
fi

bin_dest="$root/usr/local/bin/ocrbox"
unit_dest="$root/etc/systemd/system/ocrbox.service"
defaults="$root/etc/default/ocrbox"
use_systemctl=0
[ -z "$root" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ] && use_systemctl=1

if [ "$uninstall" = 1 ]; then
  if [ "$use_systemctl" = 1 ]; then
    say "systemctl disable --now ocrbox"
    systemctl disable --now ocrbox 2>/dev/null || true
  fi
  rm -f "$bin_dest" "$unit_dest"
  say "removed $bin_dest $unit_dest"
  [ "$use_systemctl" = 1 ] && systemctl daemon-reload
  if [ "$purge" = 1 ]; then
    # With DynamicUser the data is in /var/lib/private/ocrbox behind a symlink.
    rm -rf "$root/var/lib/ocrbox" "$root/var/lib/private/ocrbox" "$defaults"
    say "purged /var/lib/ocrbox and /etc/default/ocrbox"
  else
    say "kept the database in /var/lib/ocrbox and $defaults (--purge removes them)"
  fi
  exit 0
fi

[ -n "$binary" ] || binary=$(default_binary "$(uname -m)")
[ -f "$binary" ] || { echo "no such binary: $binary" >&2; exit 1; }
unit_src="$(dirname "$binary")/ocrbox.service"
[ -f "$unit_src" ] || unit_src="$here/ocrbox.service"

# Refuse a binary that cannot run here before touching the running service.
if [ -z "$root" ] && ! "$binary" --version >/dev/null 2>&1; then
  echo "$binary does not run on this machine ($(uname -m)): wrong architecture?" >&2
  exit 1
fi

say "installing $binary -> $bin_dest"
install -D -m 0755 "$binary" "$bin_dest.new"
mv -f "$bin_dest.new" "$bin_dest"
say "installing $unit_src -> $unit_dest"
install -D -m 0644 "$unit_src" "$unit_dest"
if [ ! -f "$defaults" ]; then
  install -d "$(dirname "$defaults")"
  cat > "$defaults" <<'DEFAULTS'
# Settings for the ocrbox service (read by /etc/systemd/system/ocrbox.service).
# After a change: sudo systemctl restart ocrbox
# Defaults shown; see `ocrbox serve --help`.
#OCRBOX_LISTEN=0.0.0.0:8080
#OCRBOX_WORKERS=        (default: from the number of cores)
#OCRBOX_QUEUE=64
#OCRBOX_TASK_TTL=30s
#OCRBOX_MAX_UPLOAD=20MiB
DEFAULTS
  say "wrote $defaults"
fi

if [ "$use_systemctl" = 1 ]; then
  systemctl daemon-reload
  if [ "$start" = 1 ]; then
    say "systemctl enable ocrbox && systemctl restart ocrbox"
    systemctl enable ocrbox
    systemctl restart ocrbox
    sleep 2
    systemctl --no-pager --lines=5 status ocrbox || true
  else
    systemctl enable ocrbox
    say "enabled, not started (--no-start)"
  fi
  "$bin_dest" --version || true
  say "add an API key: sudo ocrbox keys add --solves 100 --db /var/lib/ocrbox/ocrbox.redb"
else
  say "systemd is not running here${root:+ (--root $root)}: installed the files only"
fi
