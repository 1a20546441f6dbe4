//! `ocrbox`: command-line entry. Parses arguments and dispatches to a subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

// Why mimalloc, and only on musl: musl's malloc serialises threads, and OCR runs on a pool of
// worker threads (plus one image's lines over `--threads`). glibc builds keep glibc's allocator.
// With mimalloc the static musl binary reads a line as fast as the glibc build (CLI `ocr
// line_001.png`, hyperfine: 0.31 s vs 0.34 s; scripts/README.md). No A/B against musl's own
// malloc is on record.
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
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Offline OCR appliance: PP-OCRv5 mobile behind a small HTTP API.
#[derive(Parser)]
#[command(name = "ocrbox", version = cli::version::LONG, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read the text of image files and print it.
    Ocr(cli::ocr::Args),
    /// Measure accuracy on a labelled set (TSV: image path, expected text).
    Eval(cli::eval::Args),
    /// Serve the HTTP API (see README: API, configuration).
    Serve(cli::serve::Args),
    /// Manage API keys and credits (works while `serve` runs).
    Keys(cli::keys::Args),
}

fn main() -> ExitCode {
    // tract reports shape-inference dead ends through anyhow errors, thousands per plan build;
    // with RUST_BACKTRACE=1 in the environment each would capture a backtrace (slow on musl:
    // a first OCR took 1.2 s instead of 0.5 s). RUST_LIB_BACKTRACE=0 keeps panic backtraces
    // and turns those off. Set before any thread exists.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Ocr(args) => cli::ocr::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Keys(args) => cli::keys::run(args),
    }
}
