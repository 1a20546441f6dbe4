//! `ocrbox keys`: create, list, credit and revoke API keys.
//!
//! Works with or without a running server: through the server's admin socket when one is
//! listening next to the database, on the database file directly otherwise; with `--ledger`,
//! on the shared PostgreSQL database directly (every box sees the change at once).

use std::path::PathBuf;
use std::process::ExitCode;

use ocrbox::admin::{self, Reply, Request};
use ocrbox::ledger::{CreditChange, KeyInfo, LedgerError, Local, Postgres};

/// Arguments of `ocrbox keys`.
#[derive(clap::Args)]
pub struct Args {
    /// Database of keys and credits (the one `ocrbox serve` uses).
    #[arg(
        long,
        env = "OCRBOX_DB",
        default_value = super::DEFAULT_DB,
        global = true
    )]
    pub db: PathBuf,
    /// The shared PostgreSQL ledger of a fleet (the one `ocrbox serve --ledger` uses),
    /// instead of --db.
    #[arg(long, env = "OCRBOX_LEDGER", value_name = "postgres://…", global = true, value_parser = super::parse_postgres_url)]
    pub ledger: Option<String>,
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// What to do with keys.
#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key. The key alone is printed on stdout, once; it cannot be shown again.
    Add {
        /// Solve credits to start with.
        #[arg(long)]
        solves: u64,
        /// A label for the key (who or what uses it).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys: id (first 8 characters of the key), name, solves, 24h usage, created, revoked.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a key's balance: +N adds, -N subtracts (never below zero), =N sets.
    Credit {
        /// The whole key, or its id (or a unique prefix of the id).
        key: String,
        /// +N, -N or =N.
        #[arg(allow_hyphen_values = true)]
        change: CreditChange,
    },
    /// Revoke a key: it is refused (401) from now on.
    Revoke {
        /// The whole key, or its id (or a unique prefix of the id).
        key: String,
    },
}

/// Runs `ocrbox keys ...`.
pub fn run(args: Args) -> ExitCode {
    let (request, json) = match args.command {
        KeysCommand::Add { solves, name } => (Request::Add { name, solves }, false),
        KeysCommand::List { json } => (Request::List, json),
        KeysCommand::Credit { key, change } => (Request::Credit { key, change }, false),
        KeysCommand::Revoke { key } => (Request::Revoke { key }, false),
    };
    let sent = match &args.ledger {
        Some(url) => Postgres::connect(url, super::serve::DEFAULT_TASK_TTL)
            .map(|ledger| admin::execute(&ledger, request))
            .map_err(|e| e.to_string()),
        None => send(&args.db, request),
    };
    match sent {
        Ok(Reply::Error { message }) => {
            eprintln!("ocrbox keys: {message}");
            ExitCode::FAILURE
        }
        Ok(reply) => {
            print_reply(reply, json);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("ocrbox keys: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Through the running server if there is one, else on the file.
fn send(db: &std::path::Path, request: Request) -> Result<Reply, String> {
    let socket = ocrbox::admin::socket_path(db);
    match admin::call(&socket, &request) {
        Ok(Some(reply)) => return Ok(reply),
        Ok(None) => {}
        Err(e) => return Err(format!("admin socket {}: {e}", socket.display())),
    }
    if !db.exists() && !matches!(request, Request::Add { .. }) {
        return Err(format!(
            "no database at {} (create a key with `ocrbox keys add`, or pass --db)",
            db.display()
        ));
    }
    match Local::open(db) {
        Ok(ledger) => Ok(admin::execute(&ledger, request)),
        Err(LedgerError::InUse(path)) => Err(format!(
            "database {path} is held by a running server, but its admin socket {} does not \
             answer; is the socket removed or owned by another user?",
            socket.display()
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn print_reply(reply: Reply, json: bool) {
    match reply {
        Reply::Added { key, info } => {
            eprintln!(
                "Created key {} ({} solves{}). This is the only time it is shown:",
                info.id,
                info.solves,
                if info.name.is_empty() {
                    String::new()
                } else {
                    format!(", name {:?}", info.name)
                }
            );
            println!("{key}");
        }
        Reply::Keys { keys } if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&keys).unwrap_or_default()
            );
        }
        Reply::Keys { keys } => {
            println!(
                "{:<8}  {:<20}  {:>10}  {:>8}  {:<20}  REVOKED",
                "ID", "NAME", "SOLVES", "24H", "CREATED (UTC)"
            );
            for row in keys {
                let i = &row.info;
                println!(
                    "{:<8}  {:<20}  {:>10}  {:>8}  {:<20}  {}",
                    i.id,
                    i.name,
                    i.solves,
                    row.last_24h,
                    utc(i.created),
                    if i.revoked { "yes" } else { "no" }
                );
            }
        }
        Reply::Key { info } => print_key(&info),
        Reply::Error { .. } | Reply::Backup { .. } => {}
    }
}

fn print_key(info: &KeyInfo) {
    println!(
        "{}  solves={}{}",
        info.id,
        info.solves,
        if info.revoked { "  revoked" } else { "" }
    );
}

/// `YYYY-MM-DD HH:MM:SS` for unix seconds (UTC), without a date crate.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_700_000_000), "2023-11-14 22:13:20");
    }
}
