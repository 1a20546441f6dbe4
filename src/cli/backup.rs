//! `ocrbox backup OUT`: a consistent copy of the keys and credits, taken while the server runs.

use std::path::PathBuf;
use std::process::ExitCode;

use ocrbox::admin;
use ocrbox::ledger::{local, BackupStats, Ledger, Local, Postgres};

/// Arguments of `ocrbox backup`.
#[derive(clap::Args)]
pub struct Args {
    /// Database of keys and credits (the one `ocrbox serve` uses).
    #[arg(long, env = "OCRBOX_DB", default_value = super::DEFAULT_DB)]
    pub db: PathBuf,
    /// Copy the shared PostgreSQL ledger of a fleet instead of --db (keys and 24 h usage, as
    /// of one snapshot; tasks are not copied).
    #[arg(long, env = "OCRBOX_LEDGER", value_name = "postgres://…", value_parser = super::parse_postgres_url)]
    pub ledger: Option<String>,
    /// Where to write the copy (a redb file; replaced if it exists).
    pub out: PathBuf,
}

/// Through the running server's admin socket if there is one (one read transaction, OCR
/// traffic goes on), else on the database file directly; from PostgreSQL in one
/// repeatable-read transaction.
pub fn run(args: Args) -> ExitCode {
    let made = match &args.ledger {
        Some(url) => Postgres::connect(url, super::serve::DEFAULT_TASK_TTL)
            .and_then(|pg| local::write_file(&pg.snapshot()?, &args.out))
            .map_err(|e| e.to_string()),
        None => from_file(&args),
    };
    match made {
        Ok(BackupStats { keys, usage_rows }) => {
            eprintln!(
                "wrote {} ({keys} keys, {usage_rows} usage buckets)",
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ocrbox backup: {e}");
            ExitCode::FAILURE
        }
    }
}

fn from_file(args: &Args) -> Result<BackupStats, String> {
    let socket = admin::socket_path(&args.db);
    match admin::backup(&socket, &args.out) {
        Ok(Some(stats)) => Ok(stats),
        Ok(None) if !args.db.exists() => Err(format!("no database at {}", args.db.display())),
        Ok(None) => Local::open(&args.db)
            .and_then(|l| l.backup(&args.out))
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("admin socket {}: {e}", socket.display())),
    }
}
