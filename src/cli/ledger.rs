//! `ocrbox ledger copy`: moves keys, balances and 24 h usage between a redb file and a shared
//! PostgreSQL ledger (either way), to grow a single box into a fleet or to take a fleet's
//! ledger back onto one box.

use std::process::ExitCode;

use ocrbox::ledger::{self, Location};

/// Arguments of `ocrbox ledger`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: LedgerCommand,
}

/// What to do with a ledger.
#[derive(clap::Subcommand)]
pub enum LedgerCommand {
    /// Copy every key (secrets stay hashed), its balance and its last 24 h of usage into an
    /// empty ledger. Stop the server of a file ledger first (or copy from an `ocrbox backup`).
    Copy {
        /// A redb file or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// A redb file (created) or a postgres:// URL; it must have no keys yet.
        #[arg(long)]
        to: String,
    },
}

/// Runs `ocrbox ledger ...`.
pub fn run(args: Args) -> ExitCode {
    let LedgerCommand::Copy { from, to } = args.command;
    let (from, to) = (Location::parse(&from), Location::parse(&to));
    if let Location::File(path) = &from {
        if !path.exists() {
            eprintln!("ocrbox ledger copy: no database at {}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let ttl = super::serve::DEFAULT_TASK_TTL;
    let copied = ledger::open(&from, ttl).and_then(|source| {
        let target = ledger::open(&to, ttl)?;
        ledger::copy(&*source, &*target).map(|stats| (stats, target.describe()))
    });
    match copied {
        Ok((stats, target)) => {
            eprintln!(
                "copied {} keys and {} usage buckets into {target}",
                stats.keys, stats.usage_rows
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ocrbox ledger copy: {e}");
            ExitCode::FAILURE
        }
    }
}
