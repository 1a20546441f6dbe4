//! `ocrbox`: command-line entry. Parses arguments and dispatches to a subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod alloc;
mod cli;

/// Offline OCR appliance: PP-OCRv6 behind a small HTTP API.
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
    /// Write a consistent copy of the keys and credits (works while `serve` runs).
    Backup(cli::backup::Args),
    /// Move keys and credits between a redb file and a shared PostgreSQL ledger.
    Ledger(cli::ledger::Args),
}

fn main() -> ExitCode {
    // tract reports shape-inference dead ends through anyhow errors, thousands per plan build;
    // with RUST_BACKTRACE=1 in the environment each would capture a backtrace (slow on musl:
    // a first OCR took 1.2 s instead of 0.5 s). RUST_LIB_BACKTRACE=0 keeps panic backtraces
    // and turns those off. Set before any thread exists.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    alloc::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Ocr(args) => cli::ocr::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Keys(args) => cli::keys::run(args),
        Command::Backup(args) => cli::backup::run(args),
        Command::Ledger(args) => cli::ledger::run(args),
    }
}
