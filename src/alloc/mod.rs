//! The global allocator (mimalloc, every target) and its memory-return settings.

use std::alloc::{GlobalAlloc, Layout};

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
//
// Big blocks (from 1 MiB: tract's activations and packed weights) are kept for reuse by
// `blocks`, within a bound on the big blocks in use and kept, and otherwise come from the
// system and go back to it at once. Left to mimalloc's arenas, a freed block stayed resident
// until its purge delay had passed, however many there were: in a 2-minute mixed soak with 2
// workers (`scripts/soak.sh -m 2 -w 2`), a counting allocator sampled every 100 ms saw 115 MiB
// of live heap at the median and 183 at the highest, against 273 and 340 MiB of RSS. Giving
// every big block back at once instead cut the peak to 288 MiB but halved the throughput (3.8
// → 1.8 images/s): each op's output was faulted in afresh. With the bound (same soak, peak RSS
// and images/s; before: 385–390 MiB at 2.98–3.26): 128 MiB → 298–301 at 3.02–3.25; 96 → 297 at
// 2.58 (below that the peak is the live heap). Once the detector's stem stopped copying its two
// maps into one (`ocr::ops::split`, 14 MiB less live at 960²), 104 MiB held what 128 had: three
// soaks peaked at 297.7, 299.0 and 296.5 MiB at 3.13–3.29 images/s (the session's final build:
// 299.9 and 300.3), against 311.7–319.2 at 3.37–3.44 with 128 (112: 302.1 at 3.32; 96:
// 296.2–313.6 at 2.92–3.21, the peak then set by other allocations: this soak's own spread is
// ±10 MiB). scripts/README.md has the variants tried.
#[global_allocator]
static GLOBAL: Allocator = Allocator;

mod blocks;

/// mimalloc, with big blocks kept for reuse by [`blocks`].
struct Allocator;

static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;

// SAFETY: small blocks are mimalloc's; big ones are `blocks`' (over mimalloc), chosen by the
// layout, which is the same when a block is freed or resized as when it was allocated.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if blocks::is_big(layout) {
            blocks::alloc(&MI, layout, false)
        } else {
            MI.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if blocks::is_big(layout) {
            blocks::alloc(&MI, layout, true)
        } else {
            MI.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if blocks::is_big(layout) {
            blocks::dealloc(&MI, ptr)
        } else {
            MI.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (blocks::is_big(layout), blocks::is_big(new_layout)) {
            (false, false) => MI.realloc(ptr, layout, new_size),
            // Within the block, unless it would waste more than half of it.
            (true, true) if (blocks::usable(ptr) / 2..=blocks::usable(ptr)).contains(&new_size) => {
                ptr
            }
            _ => {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

/// Gives back the big blocks kept but not reused since the previous call (the service calls
/// this every second, so an idle server keeps none).
pub fn trim() {
    // SAFETY: MI is the allocator of every big block.
    unsafe { blocks::trim(&MI, false) }
}

// mimalloc v3 option ids (`mi_option_e` in its `include/mimalloc.h`; libmimalloc-sys names only
// the older ones), with the environment variable that overrides each.
const OPTIONS: [(i32, &str, std::ffi::c_long); 3] = [
    (15, "MIMALLOC_PURGE_DELAY", PURGE_DELAY_MS),
    (43, "MIMALLOC_ALLOW_THP", 0),
    // In KiB: bigger blocks come from the system and go back to it when freed; `blocks`
    // keeps the ones worth keeping.
    (
        45,
        "MIMALLOC_ARENA_MAX_OBJECT_SIZE",
        (blocks::BIG >> 10) as std::ffi::c_long,
    ),
];

/// How long mimalloc keeps freed memory before returning it to the system (its default: 1000
/// ms). Measured on two rendered pages, one thread, warm (`ocrbox ocr --json`, two rounds):
/// 0 ms made pages 35 % slower (each tract op's output faulted in anew), 100 ms as fast as the
/// default and as glibc's malloc. A 2-minute mixed soak with 2 workers then peaked at 356 MiB
/// with a steady 245–270 MiB, where the defaults peaked at 593 MiB (scripts/README.md).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Overrides the bound on big blocks in use and kept, in MiB (default 104): lower saves memory
/// under load for some speed (see above).
const BIG_BLOCKS_VAR: &str = "OCRBOX_BIG_BLOCKS_MIB";

/// Makes mimalloc give freed memory back to the system soon, and not in huge pages, unless the
/// environment sets the option, and sets the bound on big blocks if the environment does.
/// tract's activations are tens of MiB per image and freed after it; kept, they showed as RSS.
/// Runs before any thread starts.
pub fn tune() {
    if let Some(mib) = std::env::var(BIG_BLOCKS_VAR)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        blocks::set_limit(mib << 20);
    }
    for (id, var, value) in OPTIONS {
        if std::env::var_os(var).is_none() {
            // SAFETY: a setter of a process-wide integer; a valid id for the bundled mimalloc v3.
            unsafe { libmimalloc_sys::mi_option_set(id, value) };
        }
    }
}

/// Returns the memory freed so far, and the big blocks kept, to the system now. mimalloc
/// purges freed pages only when the thread that freed them allocates again, so what parsing
/// the models left free (23 MiB, `examples/memparse.rs`) would otherwise stay resident until
/// that thread's next work.
pub fn collect() {
    // SAFETY: MI is the allocator of every big block.
    unsafe { blocks::trim(&MI, true) };
    // SAFETY: no arguments beyond a flag; safe to call from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
