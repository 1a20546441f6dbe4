#!/usr/bin/env bash
# Build Debian packages (Debian 12+, Raspberry Pi OS) of ocrbox from the static binaries.
#
#   scripts/build-deb.sh [--out DIR] [TARGET...]
#
# TARGET: aarch64-unknown-linux-musl (-> arm64) and/or x86_64-unknown-linux-musl (-> amd64);
# default both. Packages target/dist/ocrbox-<target> (running scripts/build-release.sh
# <target> first when it is missing) into DIR/ocrbox_<version>_<arch>.deb (DIR defaults to
# target/dist), with a .sha256 beside it. Plain dpkg-deb: neither debhelper nor cargo-deb.
# Contents: /usr/bin/ocrbox, the unit /lib/systemd/system/ocrbox.service (scripts/ocrbox.service
# with the packaged paths and a static system user), /etc/default/ocrbox (a conffile), a
# sysusers.d entry, the man page ocrbox(1) made from the binary's --help texts, lintian
# overrides for the static binary, and in /usr/share/doc/ocrbox the DEP-5 copyright,
# changelog.Debian.gz and README.md.gz. Templates and maintainer scripts: packaging/deb/.
# Tests: scripts/deb-test.sh.
#
# Environment: VERSION (Debian version, default <Cargo.toml version>-1), DEB_MAINTAINER,
# SOURCE_DATE_EPOCH (default: the last commit's time; dates of files and changelog, so the
# same inputs give the same .deb).
# Needs dpkg-deb, gzip, file, cargo (`cargo tree` lists the linked crates' licences for the
# copyright file) and a way to run the binary for its --help: natively, or qemu-user.
set -euo pipefail

cd "$(dirname "$0")/.."
umask 022
export LC_ALL=C

out=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-musl x86_64-unknown-linux-musl)

die() { echo "build-deb.sh: error: $*" >&2; exit 1; }
for tool in dpkg-deb gzip file cargo; do
  command -v "$tool" >/dev/null || die "'$tool' not found"
done

pkg=packaging/deb
dist="${CARGO_TARGET_DIR:-target}/dist"
out="${out:-$dist}"
upstream=$(awk -F'"' '/^\[/ { p = ($0 == "[package]") } p && /^version *=/ { print $2; exit }' Cargo.toml)
[ -n "$upstream" ] || die "no version in Cargo.toml"
version="${VERSION:-$upstream-1}"
# Debian version syntax (no epoch); a typo here would only show at install time.
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$ ]] || die "bad Debian version '$version'"
maintainer="${DEB_MAINTAINER:-ocrbox maintainers <maintainers@ocrbox.invalid>}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || stat -c %Y Cargo.toml)}"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# render TEMPLATE: each @NAME@ becomes the value of $R_NAME (from the environment, so
# that backslashes in roff text pass through untouched); an unset one is an error.
render() {
  awk '{
    out = ""; rest = $0
    while (match(rest, /@[A-Z_]+@/)) {
      k = "R_" substr(rest, RSTART + 1, RLENGTH - 2)
      if (!(k in ENVIRON)) { print FILENAME ": no value for " k > "/dev/stderr"; exit 1 }
      out = out substr(rest, 1, RSTART - 1) ENVIRON[k]; rest = substr(rest, RSTART + RLENGTH)
    }
    print out rest
  }' "$1"
}

# The packaged unit: scripts/ocrbox.service (the one hardened unit, also install.sh's) with
# its header comment replaced and the three things that differ in a package: the binary in
# /usr/bin, docs as a man page, and a static system user instead of DynamicUser (the package
# owns a user that admin commands can run as while the service is stopped). Each change is
# checked, so a reworded source unit fails here instead of shipping half-converted.
packaged_unit() {
  cat <<'EOF'
# systemd unit of ocrbox, the offline OCR HTTP service, from the ocrbox Debian package
# (made from scripts/ocrbox.service by scripts/build-deb.sh). Local changes:
# `systemctl edit ocrbox`. Settings: /etc/default/ocrbox (OCRBOX_* variables).
#
# The service runs as the system user ocrbox. Its database and the admin unix socket
# are in /var/lib/ocrbox (0700); `apt remove` keeps them, `apt purge` deletes them.
# Admin commands run as root reach the running server over that socket:
#   sudo ocrbox keys add --solves 100 --db /var/lib/ocrbox/ocrbox.redb

EOF
  awk 'head && /^#/ { next } head && /^$/ { head = 0; next } { head = 0; print }' head=1 scripts/ocrbox.service |
    sed -e 's|^Documentation=.*|Documentation=man:ocrbox(1)|' \
        -e 's|^ExecStart=/usr/local/bin/ocrbox |ExecStart=/usr/bin/ocrbox |' \
        -e 's|^DynamicUser=yes$|User=ocrbox\nGroup=ocrbox|'
}
packaged_unit > "$tmp/ocrbox.service"
for want in 'ExecStart=/usr/bin/ocrbox serve' 'User=ocrbox' 'Group=ocrbox' 'StateDirectory=ocrbox' \
            'EnvironmentFile=-/etc/default/ocrbox' 'Documentation=man:ocrbox(1)' '[Install]'; do
  grep -qxF "$want" "$tmp/ocrbox.service" || die "packaged unit lacks '$want': has scripts/ocrbox.service changed?"
done
! grep -nE 'DynamicUser|/usr/local' "$tmp/ocrbox.service" || die "packaged unit still has the lines above"

# The man page: a template with the --help texts of every command (and subcommand) in roff.
make_manpage() { # RUNNER... (the binary, or qemu and the binary)
  local -a run=("$@")
  local body="$tmp/man.commands" syn="$tmp/man.synopsis"
  : > "$body"; : > "$syn"
  subcommands() { awk '/^Commands:$/ { c = 1; next } c && /^$/ { exit } c && /^  [a-z]/ { if ($1 != "help") print $1 }'; }
  walk() { # walk WORDS...: document `ocrbox WORDS`, then its subcommands
    local h subs s
    h=$("${run[@]}" "$@" --help) || die "ocrbox $* --help failed"
    subs=$(subcommands <<<"$h")
    if [ -z "$subs" ]; then
      awk -v mode=synopsis -v name="ocrbox $*" -f "$pkg/help2roff.awk" <<<"$h" >> "$syn"
    fi
    { printf '.SS "ocrbox %s"\n' "$*"; awk -v mode=body -v about=1 -f "$pkg/help2roff.awk" <<<"$h"; } >> "$body"
    for s in $subs; do walk "$@" "$s"; done
  }
  local top s
  top=$("${run[@]}" --help) || die "ocrbox --help failed"
  for s in $(subcommands <<<"$top"); do walk "$s"; done
  R_OPTIONS=$(awk -v mode=body -v about=0 -f "$pkg/help2roff.awk" <<<"$top") \
  R_SYNOPSIS=$(cat "$syn") R_COMMANDS=$(cat "$body") \
  R_DATE=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d) R_UPSTREAM=$upstream \
    render "$pkg/ocrbox.1.in"
}

# Licences of the crates linked into the binary for TARGET (no build scripts, no proc macros).
crate_licences() {
  cargo tree --locked --quiet -e normal,no-proc-macro --target "$1" --prefix none -f '{p}|{l}' |
    sed -e 's/ (\*)$//' | grep -v '^ocrbox v' | sort -u |
    awk -F'|' '{ split($1, p, " "); l = ($2 == "" ? "see the crate" : $2); sub(/^v/, "", p[2]); print " " p[1] " " p[2] ": " l }'
}

mkdir -p "$out"
for t in "${targets[@]}"; do
  case "$t" in
    aarch64-unknown-linux-musl) arch=arm64; elf="ARM aarch64"; qemu="qemu-aarch64" ;;
    x86_64-unknown-linux-musl) arch=amd64; elf="x86-64"; qemu="qemu-x86_64" ;;
    *) die "unsupported target $t (aarch64-unknown-linux-musl, x86_64-unknown-linux-musl)" ;;
  esac
  start=$(date +%s)
  bin="$dist/ocrbox-$t"
  if [ ! -f "$bin" ]; then
    echo "==> $bin missing: scripts/build-release.sh $t"
    scripts/build-release.sh --out "$dist" "$t"
  fi
  desc=$(file -b "$bin")
  case "$desc" in *"$elf"*) ;; *) die "$bin is not an $elf binary: $desc" ;; esac
  case "$desc" in *"statically linked"*|*"static-pie linked"*) ;; *) die "$bin is not static: $desc" ;; esac

  echo "==> ocrbox_${version}_$arch.deb from $bin"
  st="$tmp/$arch"
  doc="$st/usr/share/doc/ocrbox"
  mkdir -p "$st/DEBIAN" "$doc" "$st/usr/share/man/man1"
  install -D -m 0755 "$bin" "$st/usr/bin/ocrbox"
  # Run the staged copy: clap names the program after argv[0], and the page must say "ocrbox".
  if "$st/usr/bin/ocrbox" --version >/dev/null 2>&1; then
    run=("$st/usr/bin/ocrbox")
  elif command -v "$qemu" >/dev/null; then
    run=("$qemu" "$st/usr/bin/ocrbox")
  else
    die "cannot run $bin for its --help (apt-get install qemu-user)"
  fi
  install -D -m 0644 "$tmp/ocrbox.service" "$st/lib/systemd/system/ocrbox.service"
  install -D -m 0644 "$pkg/default" "$st/etc/default/ocrbox"
  install -D -m 0644 "$pkg/sysusers.conf" "$st/usr/lib/sysusers.d/ocrbox.conf"
  install -D -m 0644 "$pkg/lintian-overrides" "$st/usr/share/lintian/overrides/ocrbox"
  make_manpage "${run[@]}" | gzip -9n > "$st/usr/share/man/man1/ocrbox.1.gz"
  gzip -9n < README.md > "$doc/README.md.gz"
  crates=$(crate_licences "$t")
  [ -n "$crates" ] || die "cargo tree listed no crates for $t"
  R_CRATES=$crates render "$pkg/copyright.in" > "$doc/copyright"
  R_VERSION=$version R_UPSTREAM=$upstream R_TARGET=$t R_COMMIT=$commit R_MAINTAINER=$maintainer \
    R_DATE=$(date -u -R -d "@$SOURCE_DATE_EPOCH") render "$pkg/changelog.in" | gzip -9n > "$doc/changelog.Debian.gz"

  install -m 0755 "$pkg/postinst" "$pkg/prerm" "$pkg/postrm" "$st/DEBIAN/"
  echo /etc/default/ocrbox > "$st/DEBIAN/conffiles"
  (cd "$st" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs md5sum) > "$st/DEBIAN/md5sums"
  chmod 0644 "$st/DEBIAN/conffiles" "$st/DEBIAN/md5sums"
  R_VERSION=$version R_ARCH=$arch R_MAINTAINER=$maintainer \
    R_INSTALLED_SIZE=$(du -sk --apparent-size --exclude=DEBIAN "$st" | cut -f1) \
    render "$pkg/control.in" > "$st/DEBIAN/control"
  find "$st" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

  deb="$out/ocrbox_${version}_$arch.deb"
  dpkg-deb --root-owner-group -Zxz --build "$st" "$deb" >/dev/null
  (cd "$out" && sha256sum "$(basename "$deb")" > "$(basename "$deb").sha256")
  echo "    $deb: $(stat -c %s "$deb") bytes, $(( $(date +%s) - start ))s"
  rm -rf "$st"
done
