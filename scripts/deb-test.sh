#!/usr/bin/env bash
# Tests of the Debian packages made by scripts/build-deb.sh. Run as root.
#
#   scripts/deb-test.sh [--apt] [DEB...]
#
# Without DEB: runs scripts/build-deb.sh for the binaries present in target/dist and tests its
# output. For each package:
#  1. contents: file list, owners and modes, control fields, conffiles, md5sums, the binary's
#     architecture, the unit and the man page (no groff warnings), and that /etc/default/ocrbox
#     documents every OCRBOX_* variable `ocrbox serve --help` names;
#  2. lintian: no error and no warning (accepted tags: LINTIAN_SUPPRESS below, with reasons);
#  3. in scratch roots: an overlayfs over this machine's / (its programs, a throw-away /etc and
#     /var, empty /run and /tmp), driven with `dpkg --root`; no debootstrap:
#     a. no systemd running: install (user, state dir, conffile, enablement symlink; the
#        service run as its unit runs it: user, Environment=, EnvironmentFile, WorkingDirectory,
#        UMask; first key, /api/balance, a key added over the admin socket); a local edit of
#        /etc/default/ocrbox; upgrade to a repacked package with a higher version (edit, database
#        and keys kept); remove (database and conffile kept); install again; purge (both gone);
#     b. a running systemd faked (/run/systemd/system and a logging systemctl): start on install,
#        restart on upgrade, stop on remove;
#     c. no init-system-helpers and no systemctl at all: install, remove, purge;
#     d. what scripts/install.sh leaves (DynamicUser database behind /var/lib/ocrbox -> private/,
#        its unit in /etc): postinst warns and leaves the database; purge deletes both.
#     A package for another architecture (arm64 here) is installed the same way after
#     `dpkg --add-architecture`, and its binary runs under qemu-user.
# --apt: also `apt-get install ./DEB` on this machine (a package of its own architecture),
#   upgrade, remove and purge, with the same checks; refuses if ocrbox is installed or
#   /var/lib/ocrbox exists. Where systemd is PID 1 it checks that the service is active;
#   elsewhere it runs the service as its unit would. Removes the ocrbox user it made.
# Needs: dpkg, lintian, curl, man-db, util-linux (setpriv), overlayfs; qemu-user for arm64.

# SC2016: dpkg-query formats, awk programs and sh -c scripts are single-quoted on purpose.
# shellcheck disable=SC2016
set -euo pipefail

cd "$(dirname "$0")/.."
export LC_ALL=C

# lintian must report no error and no warning. The static binary's tags (an error on arm64,
# statically-linked-binary; a warning on amd64, shared-library-lacks-prerequisites) are
# overridden in the package itself (packaging/deb/lintian-overrides: static on purpose), so
# anyone's lintian agrees. Suppressed here only:
# - initial-upload-closes-no-bugs: the package is not uploaded to Debian; there is no ITP bug
#   for its first changelog entry to close.
# Info tags (shown, not failing): binary-has-unneeded-section .comment and
# spelling-error-in-binary (strings of dependencies in the untouched release binary),
# package-supports-alternative-init-but-no-init.d-script (systemd only, on purpose).
LINTIAN_SUPPRESS="initial-upload-closes-no-bugs"

apt_test=0
debs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --apt) apt_test=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) debs+=("$1"); shift ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "deb-test.sh: run as root (mounts, chroot, dpkg --root)" >&2; exit 1; }

fails=0
say() { echo "deb-test: $*"; }
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...: ok if the command succeeds
  local what="$1"; shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
has() { grep -qE -- "$1" <<<"$2"; }        # has REGEX TEXT
hasnt() { ! grep -qE -- "$1" <<<"$2"; }
phase_start=$SECONDS
phase() { echo; echo "== [+$((SECONDS - phase_start))s] $*"; }

if [ ${#debs[@]} -eq 0 ]; then
  dist="${CARGO_TARGET_DIR:-target}/dist"
  targets=()
  for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
    [ -f "$dist/ocrbox-$t" ] && targets+=("$t")
  done
  [ ${#targets[@]} -gt 0 ] || { echo "no binary in $dist: run scripts/build-release.sh" >&2; exit 1; }
  phase "build-deb.sh ${targets[*]}"
  scripts/build-deb.sh "${targets[@]}"
  upstream=$(awk -F'"' '/^\[/ { p = ($0 == "[package]") } p && /^version *=/ { print $2; exit }' Cargo.toml)
  for t in "${targets[@]}"; do
    case "$t" in aarch64*) a=arm64 ;; *) a=amd64 ;; esac
    debs+=("$dist/ocrbox_${VERSION:-$upstream-1}_$a.deb")
  done
fi

work=$(mktemp -d /tmp/deb-test.XXXXXX)
mounts=()
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

host_arch=$(dpkg --print-architecture)
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ---- scratch roots ---------------------------------------------------------------------
# An overlay of / with its own upper layer: the machine's programs (sh, adduser, dpkg,
# deb-systemd-helper) as a real system would have them, while every write stays in the
# upper layer. /run is empty, so there is no /run/systemd/system: no running systemd.
new_root() { # new_root NAME -> sets R
  R="$work/$1"
  mkdir -p "$R" "$R.upper" "$R.work"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$R.upper,workdir=$R.work" "$R" ||
    { echo "cannot mount an overlayfs (root, kernel overlay support needed)" >&2; exit 1; }
  mounts+=("$R")
  mount --bind /dev "$R/dev"; mounts+=("$R/dev")
  mount -t proc proc "$R/proc"; mounts+=("$R/proc")
  mount -t tmpfs tmpfs "$R/run"; mounts+=("$R/run")
  mount -t tmpfs tmpfs "$R/tmp"; mounts+=("$R/tmp")
  # The scratch root starts as this machine: it must not know ocrbox already.
  if in_root dpkg-query -W ocrbox >/dev/null 2>&1 || [ -e "$R/var/lib/ocrbox" ]; then
    echo "this machine has ocrbox installed or /var/lib/ocrbox: purge it first" >&2; exit 1
  fi
  if in_root getent passwd ocrbox >/dev/null; then
    # Left by an earlier --apt run (packages keep their system user): hide it here.
    in_root userdel ocrbox >/dev/null 2>&1 || true
    in_root groupdel ocrbox >/dev/null 2>&1 || true
  fi
}
in_root() { chroot "$R" /usr/bin/env -i PATH="$SYS_PATH" LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }
rdpkg() { # dpkg on the scratch root; maintainer scripts run chrooted into it
  env -i PATH="$SYS_PATH" LC_ALL=C DEBIAN_FRONTEND=noninteractive dpkg --root="$R" --force-unsafe-io "$@"
}
status() { in_root dpkg-query -W -f='${db:Status-Abbrev}${Version}' ocrbox 2>/dev/null || echo "not-installed"; }

# How to run the packaged binary in the root: natively, or under qemu-user.
runner() {
  if in_root /usr/bin/ocrbox --version >/dev/null 2>&1; then
    run=(/usr/bin/ocrbox)
  else
    case "$deb_arch" in arm64) run=(qemu-aarch64 /usr/bin/ocrbox) ;; amd64) run=(qemu-x86_64 /usr/bin/ocrbox) ;; esac
    in_root "${run[@]}" --version >/dev/null || { bad "cannot run the $deb_arch binary"; return 1; }
  fi
}

# Start `ocrbox serve` as the installed unit would: its User=, Environment=, EnvironmentFile,
# WorkingDirectory= and UMask=, from the unit file itself. Sets server_pid and key (the first
# key the server prints on an empty database, if any).
unit_serve() { # unit_serve PORT
  local unit="$R/lib/systemd/system/ocrbox.service" envs=() user dir umask_ line
  user=$(sed -n 's/^User=//p' "$unit")
  dir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
  umask_=$(sed -n 's/^UMask=//p' "$unit")
  while read -r line; do envs+=("$line"); done < <(sed -n 's/^Environment=//p' "$unit" | tr ' ' '\n')
  [ "$(sed -n 's/^EnvironmentFile=//p' "$unit")" = "-/etc/default/ocrbox" ] || bad "unit reads /etc/default/ocrbox"
  while read -r line; do envs+=("$line"); done < <(grep -E '^[A-Z_][A-Z0-9_]*=' "$R/etc/default/ocrbox" || true)
  [ "$(sed -n 's/^ExecStart=//p' "$unit")" = "/usr/bin/ocrbox serve" ] || bad "unit runs /usr/bin/ocrbox serve"
  : > "$work/serve.log"
  chroot "$R" /usr/bin/setpriv --reuid="$user" --regid="$user" --init-groups \
    /bin/sh -c 'umask "$1"; cd "$2" && shift 2 && exec /usr/bin/env -i "$@"' sh "$umask_" "$dir" \
    PATH="$SYS_PATH" "${envs[@]}" "${run[@]}" serve > "$work/serve.log" 2>&1 &
  server_pid=$!
  local i code
  for ((i = 0; i < 300; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/api/balance?api=x" 2>/dev/null || true)
    if [ "$code" = 401 ]; then
      key=$(grep -oE '^ +[0-9a-f]{40}$' "$work/serve.log" | tr -d ' ' | head -n1 || true)
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  bad "server did not answer on port $1"; sed 's/^/    | /' "$work/serve.log"
  return 1
}
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
keys_json() { in_root setpriv --reuid=ocrbox --regid=ocrbox --init-groups "${run[@]}" keys list --json --db /var/lib/ocrbox/ocrbox.redb; }
db_sum() { sha256sum "$R/var/lib/ocrbox/ocrbox.redb" | cut -d' ' -f1; }
# Numeric owner and mode: names would be looked up in this machine's /etc/passwd, not the root's.
owner_mode() { stat -c '%u:%g %a' "$1"; }
ocrbox_ids() { echo "$(in_root id -u ocrbox):$(in_root id -g ocrbox)"; }

# A package with a higher version and the same contents: the "next release" to upgrade to.
bumped() { # bumped DEB -> prints the new .deb's path
  local d="$work/bump" v
  rm -rf "$d"; dpkg-deb -R "$1" "$d"
  v="$(dpkg-deb -f "$1" Version)+up1"
  sed -i "s/^Version: .*/Version: $v/" "$d/DEBIAN/control"
  dpkg-deb --root-owner-group -Znone -b "$d" "$work/ocrbox_${v}_$deb_arch.deb" >/dev/null
  rm -rf "$d"
  echo "$work/ocrbox_${v}_$deb_arch.deb"
}

# The no-systemd life cycle, shared by the scratch root (dpkg --root) and --apt (apt-get on /).
# pm install|remove|purge DEB: the package manager to use.
lifecycle() {
  local deb="$1" up="$2" port key1 sum uid
  port=$(free_port)
  pm install "$deb"
  check "installed: $(status)" test "$(status)" = "ii $(dpkg-deb -f "$deb" Version)"
  pw=$(in_root getent passwd ocrbox || true)
  check "system user ocrbox: $pw" awk -F: '$3 < 1000 && $6 == "/var/lib/ocrbox" && $7 == "/usr/sbin/nologin" { f = 1 } END { exit !f }' <<<"$pw"
  check "group ocrbox" in_root getent group ocrbox
  ids=$(ocrbox_ids)
  check "/var/lib/ocrbox is ocrbox:ocrbox 700" test "$(owner_mode "$R/var/lib/ocrbox")" = "$ids 700"
  check "/etc/default/ocrbox is a registered conffile" \
    grep -qE '^ /etc/default/ocrbox [0-9a-f]{32}$' <<<"$(in_root dpkg-query -W -f='${Conffiles}' ocrbox)"
  check "binary, unit, man page, sysusers.d installed" test -x "$R/usr/bin/ocrbox" -a -f "$R/lib/systemd/system/ocrbox.service" \
    -a -f "$R/usr/share/man/man1/ocrbox.1.gz" -a -f "$R/usr/lib/sysusers.d/ocrbox.conf"
  if [ -x "$R/usr/bin/deb-systemd-helper" ]; then
    check "enabled for the next boot (multi-user.target.wants symlink)" \
      has '^(/usr)?/lib/systemd/system/ocrbox.service$' "$(readlink "$R/etc/systemd/system/multi-user.target.wants/ocrbox.service")"
  fi
  if [ -x "$R/usr/bin/systemd-analyze" ]; then
    v=$(in_root systemd-analyze verify /lib/systemd/system/ocrbox.service 2>&1 || echo "exit status $?")
    if [ -z "$v" ]; then ok "systemd-analyze verify of the installed unit"; else bad "systemd-analyze verify: $v"; fi
  fi
  runner || return 1

  # The admin's local edit: the listening address, which the server below must obey.
  echo "OCRBOX_LISTEN=127.0.0.1:$port" >> "$R/etc/default/ocrbox"
  unit_serve "$port" || return 1
  key1="$key"
  check "first start printed a first key" test -n "$key1"
  check "first key has 100 solves on /api/balance" grep -q '"solves":100' <<<"$(curl -s "http://127.0.0.1:$port/api/balance?api=$key1")"
  check "server runs as ocrbox" test "$(stat -c %u:%g "/proc/$server_pid")" = "$ids"
  check "database ocrbox:ocrbox 600 (UMask=0077)" test "$(owner_mode "$R/var/lib/ocrbox/ocrbox.redb")" = "$ids 600"
  check "admin socket ocrbox:ocrbox 600" test "$(owner_mode "$R/var/lib/ocrbox/ocrbox.redb.sock")" = "$ids 600"
  check "root adds a key over the admin socket" \
    in_root "${run[@]}" keys add --solves 7 --name deb-test --db /var/lib/ocrbox/ocrbox.redb
  stop_server
  kj=$(keys_json | tr -d ' \n' || true)
  check "as ocrbox, server stopped: keys list has 2 keys, deb-test with 7 solves" \
    test "$(grep -o '"id"' <<<"$kj" | wc -l)" = 2 -a -n "$(grep -F '"name":"deb-test","solves":7,' <<<"$kj")"
  sum=$(db_sum)
  uid=$(in_root id -u ocrbox)

  pm install "$up"
  check "upgraded: $(status)" test "$(status)" = "ii $(dpkg-deb -f "$up" Version)"
  check "upgrade kept the edited /etc/default/ocrbox" grep -qx "OCRBOX_LISTEN=127.0.0.1:$port" "$R/etc/default/ocrbox"
  check "upgrade left no .dpkg-new/.dpkg-dist" test -z "$(find "$R/etc/default" -name 'ocrbox.dpkg-*')"
  check "upgrade kept the database unchanged" test "$(db_sum)" = "$sum"
  check "upgrade kept the user's uid" test "$(in_root id -u ocrbox)" = "$uid"
  unit_serve "$port" || return 1
  check "after upgrade the first key still has 100 solves" \
    grep -q '"solves":100' <<<"$(curl -s "http://127.0.0.1:$port/api/balance?api=$key1")"
  check "after upgrade no new first key was made" test -z "$key"
  stop_server
  sum=$(db_sum)

  pm remove
  check "removed: $(status)" test "$(status)" = "rc $(dpkg-deb -f "$up" Version)"
  check "remove took the binary and the unit" test ! -e "$R/usr/bin/ocrbox" -a ! -e "$R/lib/systemd/system/ocrbox.service"
  check "remove kept the database" test "$(db_sum)" = "$sum"
  check "remove kept the edited /etc/default/ocrbox" grep -qx "OCRBOX_LISTEN=127.0.0.1:$port" "$R/etc/default/ocrbox"
  check "remove kept the user" in_root getent passwd ocrbox

  pm install "$up"
  check "installed again: $(status)" test "$(status)" = "ii $(dpkg-deb -f "$up" Version)"
  check "reinstall found the database and the edit" \
    test "$(db_sum)" = "$sum" -a -n "$(grep -x "OCRBOX_LISTEN=127.0.0.1:$port" "$R/etc/default/ocrbox")"

  pm purge
  check "purged: $(status)" grep -qxE 'not-installed|un ' <<<"$(status)"
  check "purge deleted /var/lib/ocrbox" test ! -e "$R/var/lib/ocrbox" -a ! -L "$R/var/lib/ocrbox"
  check "purge deleted /etc/default/ocrbox" test ! -e "$R/etc/default/ocrbox"
  check "purge deleted the enablement symlink" test ! -L "$R/etc/systemd/system/multi-user.target.wants/ocrbox.service"
  check "purge left no deb-systemd-helper state" test ! -e "$R/var/lib/systemd/deb-systemd-helper-enabled/ocrbox.service.dsh-also"
}

# A systemctl that logs its calls. Offline ones (--root=, deb-systemd-helper's preset, which
# makes the enablement symlinks) go to the real systemctl; the others get the answers of a
# running systemd: enabled if the wants symlink exists, inactive, done.
stub_systemctl() {
  [ ! -e "$R/usr/bin/systemctl" ] || mv "$R/usr/bin/systemctl" "$R/usr/bin/systemctl.real"
  cat > "$R/usr/bin/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >> /var/log/systemctl-stub.log
case " $* " in
  *" --root="*) if [ -x /usr/bin/systemctl.real ]; then exec /usr/bin/systemctl.real "$@"; fi; exit 0 ;;
  *" is-enabled "*) if [ -L /etc/systemd/system/multi-user.target.wants/ocrbox.service ]; then echo enabled; else echo disabled; exit 1; fi ;;
  *" is-active "*) exit 3 ;;
esac
exit 0
EOF
  chmod 0755 "$R/usr/bin/systemctl"
}
calls() { # the logged calls to a running systemd that act (not queries), then forget them
  local f="$R/var/log/systemctl-stub.log"
  [ -f "$f" ] || return 0
  grep -v -e is-enabled -e is-active -e --root= "$f" | tr '\n' ';' || true
  : > "$f"
}

dpkg_pm() {
  case "$1" in
    install) rdpkg -i "$2" >> "$work/dpkg.log" 2>&1 || { bad "dpkg -i $2"; tail -20 "$work/dpkg.log"; } ;;
    remove) rdpkg -r ocrbox >> "$work/dpkg.log" 2>&1 || bad "dpkg -r" ;;
    purge) rdpkg -P ocrbox >> "$work/dpkg.log" 2>&1 || bad "dpkg -P" ;;
  esac
}
apt_pm() {
  local DEBIAN_FRONTEND=noninteractive
  export DEBIAN_FRONTEND
  case "$1" in
    install) apt-get install -y -q "$(realpath "$2")" >> "$work/apt.log" 2>&1 || { bad "apt-get install $2"; tail -20 "$work/apt.log"; } ;;
    remove) apt-get remove -y -q ocrbox >> "$work/apt.log" 2>&1 || bad "apt-get remove" ;;
    purge) apt-get purge -y -q ocrbox >> "$work/apt.log" 2>&1 || bad "apt-get purge" ;;
  esac
}

# ---- the tests ---------------------------------------------------------------------------
for deb in "${debs[@]}"; do
  [ -f "$deb" ] || { echo "no such package: $deb" >&2; exit 1; }
  deb_arch=$(dpkg-deb -f "$deb" Architecture)
  version=$(dpkg-deb -f "$deb" Version)
  phase "$deb ($deb_arch, $version, $(stat -c %s "$deb") bytes): contents"
  x="$work/x-$deb_arch"
  rm -rf "$x"; mkdir -p "$x"; dpkg-deb -R "$deb" "$x"

  expected="./etc/default/ocrbox
./lib/systemd/system/ocrbox.service
./usr/bin/ocrbox
./usr/lib/sysusers.d/ocrbox.conf
./usr/share/doc/ocrbox/README.md.gz
./usr/share/doc/ocrbox/changelog.Debian.gz
./usr/share/doc/ocrbox/copyright
./usr/share/lintian/overrides/ocrbox
./usr/share/man/man1/ocrbox.1.gz"
  files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sort)
  if [ "$files" = "$expected" ]; then ok "file list"; else bad "file list:"; diff <(echo "$expected") <(echo "$files") || true; fi
  check "every entry root/root" sh -c "! dpkg-deb -c '$deb' | awk '\$2 != \"root/root\"' | grep -q ."
  check "modes: binary 755, the rest 644, dirs 755" sh -c "! dpkg-deb -c '$deb' | awk '
    (\$6 == \"./usr/bin/ocrbox\" && \$1 != \"-rwxr-xr-x\") || (\$1 ~ /^-/ && \$6 != \"./usr/bin/ocrbox\" && \$1 != \"-rw-r--r--\") || (\$1 ~ /^d/ && \$1 != \"drwxr-xr-x\")' | grep -q ."
  check "control: Package ocrbox, Depends adduser" test "$(dpkg-deb -f "$deb" Package Depends | tr '\n' ' ')" = "Package: ocrbox Depends: adduser "
  case "$deb_arch" in arm64) elf="ARM aarch64" ;; amd64) elf="x86-64" ;; *) elf="?" ;; esac
  fd=$(file -b "$x/usr/bin/ocrbox")
  check "usr/bin/ocrbox is a static $elf binary" has "$elf.*(statically linked|static-pie linked)" "$fd"
  check "conffiles: /etc/default/ocrbox" test "$(cat "$x/DEBIAN/conffiles")" = /etc/default/ocrbox
  check "md5sums match" bash -c 'cd "$1" && md5sum --quiet -c DEBIAN/md5sums' _ "$x"
  check "maintainer scripts: sh -n, shellcheck-clean when shellcheck exists" sh -c "
    for s in postinst prerm postrm; do sh -n '$x/DEBIAN/'\$s || exit 1; done
    ! command -v shellcheck >/dev/null || shellcheck -s sh '$x'/DEBIAN/postinst '$x'/DEBIAN/prerm '$x'/DEBIAN/postrm"
  check "copyright: DEP-5, Apache-2.0 for ocrbox and the models, crate list" sh -c "
    f='$x/usr/share/doc/ocrbox/copyright'
    head -n1 \$f | grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' &&
    grep -q '^Files: models/\*' \$f && grep -q '^ tract-onnx [0-9.]*: ' \$f && [ \$(grep -c '^License: Apache-2.0' \$f) -ge 3 ]"
  manw=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$x/usr/share/man/man1/ocrbox.1.gz" 2>&1 >/dev/null || true)
  if [ -z "$manw" ]; then ok "man page renders without groff warnings"; else bad "man page warnings:"; echo "$manw" | head; fi
  mantext=$(MANWIDTH=80 man -E UTF-8 -l "$x/usr/share/man/man1/ocrbox.1.gz" 2>/dev/null | col -b)
  for c in "ocrbox serve" "ocrbox keys add" "ocrbox ocr" "OCRBOX_LISTEN" "/etc/default/ocrbox"; do
    check "man page has '$c'" grep -qF -- "$c" <<<"$mantext"
  done
  unit="$x/lib/systemd/system/ocrbox.service"
  check "unit: /usr/bin/ocrbox, User=ocrbox, no DynamicUser, EnvironmentFile" sh -c "
    grep -qx 'ExecStart=/usr/bin/ocrbox serve' '$unit' && grep -qx 'User=ocrbox' '$unit' &&
    ! grep -q DynamicUser '$unit' && grep -qx 'EnvironmentFile=-/etc/default/ocrbox' '$unit'"
  # Every hardening line of scripts/ocrbox.service is in the packaged unit.
  missing=$(grep -E '^(Protect|Private|Restrict|NoNewPriv|Capability|SystemCall|Memory|Lock|UMask|StateDirectory)' scripts/ocrbox.service |
    grep -vxF -f "$unit" || true)
  if [ -z "$missing" ]; then ok "unit keeps every sandbox line of scripts/ocrbox.service"; else bad "unit lost: $missing"; fi
  # The settings file names every variable `ocrbox serve` reads (from its --help).
  if "$x/usr/bin/ocrbox" --version >/dev/null 2>&1; then hrun=("$x/usr/bin/ocrbox"); else
    case "$deb_arch" in arm64) hrun=(qemu-aarch64 "$x/usr/bin/ocrbox") ;; *) hrun=(qemu-x86_64 "$x/usr/bin/ocrbox") ;; esac
  fi
  vars=$("${hrun[@]}" serve --help | grep -oE 'env: OCRBOX_[A-Z_]+' | cut -c6- | sort -u)
  undocumented=$(for v in $vars; do grep -qE "^#?$v=" "$x/etc/default/ocrbox" || echo "$v"; done)
  if [ -n "$vars" ] && [ -z "$undocumented" ]; then ok "/etc/default/ocrbox documents $(echo "$vars" | wc -l) OCRBOX_* variables of serve --help"
  else bad "/etc/default/ocrbox lacks: ${undocumented:-(no variables found in serve --help)}"; fi
  if command -v systemd-analyze >/dev/null; then
    say "systemd-analyze security --offline: $(systemd-analyze security --offline=yes "$unit" 2>/dev/null | tail -n1)"
  fi

  phase "lintian"
  # (Not --show-overrides: with it, lintian fails on the overridden tags too.)
  if lintian --fail-on error,warning --display-info --suppress-tags "$LINTIAN_SUPPRESS" "$deb" > "$work/lintian.out" 2>&1; then
    ok "lintian: no error, no warning ($(grep -c '^I:' "$work/lintian.out" || true) info tags; suppressed: $LINTIAN_SUPPRESS)"
  else
    bad "lintian"
  fi
  grep -v 'running with root privileges' "$work/lintian.out" | sed 's/^/    | /' || true

  up=$(bumped "$deb")

  phase "scratch root, no systemd running: install, upgrade, remove, purge"
  new_root "nosd-$deb_arch"
  [ "$deb_arch" = "$host_arch" ] || rdpkg --add-architecture "$deb_arch"
  stub_systemctl
  pm() { dpkg_pm "$@"; }
  lifecycle "$deb" "$up" || bad "life cycle stopped early"
  check "no systemctl call without a running systemd" test -z "$(calls)"

  phase "scratch root, a running systemd faked: start, restart, stop"
  new_root "sd-$deb_arch"
  [ "$deb_arch" = "$host_arch" ] || rdpkg --add-architecture "$deb_arch"
  mkdir -p "$R/run/systemd/system"
  rm -f "$R/usr/sbin/policy-rc.d"   # a container's "start nothing" policy would hide the calls
  stub_systemctl
  dpkg_pm install "$deb"
  c=$(calls); check "install: daemon-reload, then start ($c)" has 'daemon-reload;.* start ocrbox.service' "$c"
  dpkg_pm install "$up"
  c=$(calls); check "upgrade: restart ($c)" has ' restart ocrbox.service' "$c"
  check "upgrade: no stop" hasnt 'stop' "$c"
  dpkg_pm remove
  c=$(calls); check "remove: stop, then daemon-reload ($c)" has 'stop ocrbox.service;.*daemon-reload' "$c"
  dpkg_pm purge
  check "purged with systemd: $(status)" test ! -e "$R/var/lib/ocrbox" -a ! -e "$R/etc/default/ocrbox"

  phase "scratch root without init-system-helpers and systemctl"
  new_root "noish-$deb_arch"
  [ "$deb_arch" = "$host_arch" ] || rdpkg --add-architecture "$deb_arch"
  rm -f "$R/usr/bin/deb-systemd-helper" "$R/usr/bin/deb-systemd-invoke" "$R/usr/bin/systemctl" "$R/bin/systemctl"
  dpkg_pm install "$deb"
  check "installed without them: $(status)" test "$(status)" = "ii $version"
  check "user and state dir made" test "$(owner_mode "$R/var/lib/ocrbox")" = "$(ocrbox_ids) 700"
  dpkg_pm remove
  dpkg_pm purge
  check "removed and purged without them" test ! -e "$R/var/lib/ocrbox" -a ! -e "$R/usr/bin/ocrbox"

  phase "scratch root left by scripts/install.sh (DynamicUser database, unit in /etc)"
  new_root "old-$deb_arch"
  [ "$deb_arch" = "$host_arch" ] || rdpkg --add-architecture "$deb_arch"
  mkdir -p "$R/var/lib/private/ocrbox"; chmod 0700 "$R/var/lib/private"
  echo data > "$R/var/lib/private/ocrbox/ocrbox.redb"; ln -s private/ocrbox "$R/var/lib/ocrbox"
  cp "$x/lib/systemd/system/ocrbox.service" "$R/etc/systemd/system/ocrbox.service"
  : > "$work/dpkg.log"
  dpkg_pm install "$deb"
  check "postinst warns that /etc/systemd/system/ocrbox.service overrides the package's" \
    grep -q 'overrides the packaged unit' "$work/dpkg.log"
  check "postinst left the DynamicUser symlink and database for systemd to move back" \
    test "$(readlink "$R/var/lib/ocrbox")" = private/ocrbox -a -f "$R/var/lib/private/ocrbox/ocrbox.redb"
  dpkg_pm purge
  check "purge deleted the symlink and /var/lib/private/ocrbox" \
    test ! -e "$R/var/lib/ocrbox" -a ! -L "$R/var/lib/ocrbox" -a ! -e "$R/var/lib/private/ocrbox"

  if [ "$apt_test" = 1 ] && [ "$deb_arch" = "$host_arch" ]; then
    phase "apt-get install on this machine"
    R=/
    if dpkg-query -W ocrbox >/dev/null 2>&1 || [ -e /var/lib/ocrbox ]; then
      bad "ocrbox is installed here or /var/lib/ocrbox exists: not touching it"
    else
      had_user=0
      if getent passwd ocrbox >/dev/null; then had_user=1; fi
      if [ -d /run/systemd/system ]; then
        say "systemd is running: the package must start the service"
        pm() { apt_pm "$@"; }
        apt_pm install "$deb"
        sleep 3
        check "systemctl is-active ocrbox" systemctl is-active --quiet ocrbox
        check "the service answers on :8080" has 401 "$(curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1:8080/api/balance?api=x')"
        apt_pm purge
      else
        say "systemd is not running here (PID 1 is $(ps -p 1 -o comm=)): nothing starts the service; run as its unit would"
        pm() { apt_pm "$@"; }
        lifecycle "$deb" "$up" || bad "life cycle stopped early"
      fi
      # The package leaves its system user on purge; the test removes the one it made.
      if [ "$had_user" = 0 ] && getent passwd ocrbox >/dev/null; then
        userdel ocrbox && { groupdel ocrbox 2>/dev/null || true; } && say "removed the ocrbox user this test made"
      fi
    fi
  fi
  rm -rf "$x"
done

phase "done"
if [ "$fails" -gt 0 ]; then say "$fails check(s) failed"; exit 1; fi
say "all checks passed"
