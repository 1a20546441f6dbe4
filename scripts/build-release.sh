#!/usr/bin/env bash
# Build static release binaries of ocrbox for the musl targets.
#
#   scripts/build-release.sh [--profile NAME] [--out DIR] [--cross] [--dry-run] [TARGET...]
#
# TARGET defaults to: x86_64-unknown-linux-musl aarch64-unknown-linux-musl
# (armv7-unknown-linux-musleabihf also works when gcc-arm-linux-gnueabihf is installed).
# --profile defaults to `dist` (Cargo.toml: fat LTO, one codegen unit: the shipped binaries);
# the binary is read from target/<target>/<profile>/ocrbox. The binaries land in DIR (default
# $CARGO_TARGET_DIR/dist, i.e. target/dist) as ocrbox-<target>, each checked to be statically
# linked, with a .sha256 beside it. Needs (Debian): musl-tools for x86_64, gcc-aarch64-linux-gnu
# for aarch64, and `rustup target add <target>`.
# --cross builds with `cross` (Docker/Podman images with a musl cross gcc) instead of the host's
# toolchains, with CROSS_CONFIG set to this repository's cross.toml (cross itself only reads
# Cross.toml). --dry-run prints each build command and builds nothing.
# Honours CARGO_TARGET_DIR; prints the wall time of each build.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

profile=dist
out=""
tool=cargo
dry=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --cross) tool=cross; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

need() {
  [ "$dry" = 1 ] || command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' not found ($2)" >&2; exit 1; }
}

if [ "$tool" = cross ]; then
  need cross "cargo install cross --locked; it also needs Docker or Podman"
  # cross looks for Cross.toml or $CROSS_CONFIG (a path it resolves from its working
  # directory), never for our lower-case cross.toml: name it, absolute, so any cwd works.
  export CROSS_CONFIG="$root/cross.toml"
  shown="CROSS_CONFIG=$CROSS_CONFIG cross"
else
  shown=cargo
fi

# Set the C compiler / linker for one target. C code is compiled by
# libmimalloc-sys (mimalloc) and tract-linalg (assembly kernels); everything is
# linked statically against the musl libc that ships with Rust's target.
setup_target() {
  local t="$1" env_t
  env_t=$(echo "$t" | tr 'a-z-' 'A-Z_')
  # musl targets are static by default; say so explicitly so that a changed
  # default (or a user's RUSTFLAGS) cannot silently produce a dynamic binary.
  local var="CARGO_TARGET_${env_t}_RUSTFLAGS"
  export "$var"="${!var:-} -C target-feature=+crt-static"
  # cross's images bring their own musl cross gcc and Rust target.
  [ "$tool" = cargo ] || return 0
  case "$t" in
    x86_64-unknown-linux-musl)
      need musl-gcc "apt-get install musl-tools"
      export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
      export AR_x86_64_unknown_linux_musl="${AR_x86_64_unknown_linux_musl:-ar}"
      ;;
    aarch64-unknown-linux-musl)
      need aarch64-linux-gnu-gcc "apt-get install gcc-aarch64-linux-gnu"
      export CC_aarch64_unknown_linux_musl="${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}"
      export AR_aarch64_unknown_linux_musl="${AR_aarch64_unknown_linux_musl:-aarch64-linux-gnu-ar}"
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-aarch64-linux-gnu-gcc}"
      ;;
    armv7-unknown-linux-musleabihf)
      need arm-linux-gnueabihf-gcc "apt-get install gcc-arm-linux-gnueabihf"
      export CC_armv7_unknown_linux_musleabihf="${CC_armv7_unknown_linux_musleabihf:-arm-linux-gnueabihf-gcc}"
      export AR_armv7_unknown_linux_musleabihf="${AR_armv7_unknown_linux_musleabihf:-arm-linux-gnueabihf-ar}"
      export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER="${CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER:-arm-linux-gnueabihf-gcc}"
      ;;
    *) echo "error: unsupported target $t" >&2; exit 2 ;;
  esac
  [ "$dry" = 0 ] || return 0
  if ! rustup target list --installed 2>/dev/null | grep -qx "$t"; then
    echo "error: Rust target $t missing: rustup target add $t" >&2
    exit 1
  fi
}

target_dir="${CARGO_TARGET_DIR:-target}"
case "$profile" in
  dev) profile_dir=debug ;;
  *) profile_dir="$profile" ;;
esac
out="${out:-$target_dir/dist}"

for t in "${targets[@]}"; do
  setup_target "$t"
  echo "==> $shown build --locked --profile $profile --target $t"
  [ "$dry" = 0 ] || continue
  mkdir -p "$out"
  start=$(date +%s)
  "$tool" build --locked --profile "$profile" --target "$t"
  secs=$(( $(date +%s) - start ))
  bin="$target_dir/$t/$profile_dir/ocrbox"
  dest="$out/ocrbox-$t"
  cp "$bin" "$dest"
  desc=$(file -b "$dest")
  echo "    $dest: $desc"
  case "$desc" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) echo "error: $dest is not statically linked" >&2; exit 1 ;;
  esac
  echo "    size: $(stat -c %s "$dest") bytes; build time: ${secs}s"
  (cd "$out" && sha256sum "ocrbox-$t" > "ocrbox-$t.sha256")
done
