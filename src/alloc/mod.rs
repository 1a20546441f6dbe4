//! The global allocator (mimalloc, every target) and its memory-return settings.

// Why mimalloc: musl's malloc serialises threads, and OCR runs on a pool of worker threads (plus
// one image's lines over `--threads`). With mimalloc the static musl binary reads a line as fast
// as the glibc build (CLI `ocr line_001.png`, hyperfine: 0.31 s vs 0.34 s; scripts/README.md).
// glibc builds (tests, `cargo run`) use it too, so what is measured here is what ships.
//
// mimalloc is C, compiled by `libmimalloc-sys` with the target's C compiler. For aarch64,
// scripts/build-release.sh uses Debian's glibc cross gcc, so mimalloc is compiled against
// glibc's headers and linked against musl's `libc.a`. That is sound because it only calls
// functions whose ABI the two libcs share (`nm -u libmimalloc.a`: mmap, madvise, pthread_key_*,
// pthread_mutex_*, getenv, sysconf, ...). The one type whose size differs, `pthread_mutex_t`,
// is larger in glibc's headers (48 bytes) than in musl's (40), so musl never writes past it,
// and both initialise it to zeros. A glibc-only symbol would fail the static link. `cross`
// uses a real musl cross gcc.
//
// No `-sys` crate needs a C library at run time (`cargo tree --target
// aarch64-unknown-linux-musl -e normal` lists three): `libmimalloc-sys` is this allocator,
// linked statically; `libc` is declarations resolved against the musl `libc.a` shipped with
// Rust's target; `linux-raw-sys` is kernel types and constants, no C (via rustix <- xattr <-
// tar <- tract-nnef). tract-linalg also builds foreign code: assembly matmul kernels (NEON,
// AVX/FMA) chosen at run time by CPU feature detection.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc v3 option ids (`mi_option_e` in its `include/mimalloc.h`; libmimalloc-sys names only
// the older ones), with the environment variable that overrides each.
const OPTIONS: [(i32, &str, std::ffi::c_long); 2] = [
    (15, "MIMALLOC_PURGE_DELAY", PURGE_DELAY_MS),
    (43, "MIMALLOC_ALLOW_THP", 0),
];

/// How long mimalloc keeps freed memory before returning it to the system (its default: 1000
/// ms). Measured on two rendered pages, one thread, warm (`ocrbox ocr --json`, two rounds):
/// 0 ms made pages 35 % slower (each tract op's output faulted in anew), 100 ms as fast as the
/// default and as glibc's malloc. A 2-minute mixed soak with 2 workers then peaked at 356 MiB
/// with a steady 245–270 MiB, where the defaults peaked at 593 MiB (scripts/README.md).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Makes mimalloc give freed memory back to the system soon, and not in huge pages, unless the
/// environment sets the option. tract's activations are tens of MiB per image and freed after
/// it; kept, they showed as RSS. Runs before any thread starts.
pub fn tune() {
    for (id, var, value) in OPTIONS {
        if std::env::var_os(var).is_none() {
            // SAFETY: a setter of a process-wide integer; a valid id for the bundled mimalloc v3.
            unsafe { libmimalloc_sys::mi_option_set(id, value) };
        }
    }
}

/// Returns the memory freed so far to the system now. mimalloc purges freed pages only when
/// the thread that freed them allocates again, so what parsing the models left free (23 MiB,
/// `examples/memparse.rs`) would otherwise stay resident until that thread's next work.
pub fn collect() {
    // SAFETY: no arguments beyond a flag; safe to call from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
