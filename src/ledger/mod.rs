//! API keys, solve credits and 24-hour usage: one interface ([`Ledger`]), two places to keep them.
//!
//! - [`local`]: one redb file, for a single box (the default, `--db`).
//! - [`postgres`]: a PostgreSQL database shared by several boxes behind a load balancer
//!   (`--ledger postgres://…`); tasks and their results are kept there too, so any box answers
//!   a poll.
//!
//! Keys are stored only as their SHA-256; the first [`ID_LEN`] characters of each key are kept in
//! clear as a short, non-secret *key id* so administrators can name a key without the secret
//! (`ocrbox keys credit 3f9a01bc +100`). Keys carry 160 random bits, so the 32 bits revealed by
//! the id still leave 128 secret bits.
//!
//! Credits are exact in both: a credit is *held* when a task is accepted ([`reserve`]) and
//! *deducted* only when OCR succeeds ([`Reservation::charge`]), in the same transaction that
//! records the usage. A reservation that ends without being charged (failed OCR, expired task,
//! shutdown) releases its credits.

pub mod local;
pub mod postgres;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use local::Local;
pub use postgres::Postgres;

/// SHA-256 of an API key: how keys are identified at rest and in memory.
pub type KeyHash = [u8; 32];

/// Length of the visible key id (a prefix of the key).
pub const ID_LEN: usize = 8;
/// Random bytes in a new key (160 bits; hex-encoded to 40 characters).
const KEY_BYTES: usize = 20;
/// Minutes in the rolling usage window.
pub const WINDOW_MINUTES: u64 = 24 * 60;

/// What can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database is held by another process (usually a running `ocrbox serve`).
    #[error("database {0} is in use by another process (is `ocrbox serve` running?)")]
    InUse(String),
    #[error("database error: {0}")]
    Db(String),
    /// The shared database cannot be reached (down, restarting, too slow): try again later.
    #[error("ledger database unavailable: {0}")]
    Unavailable(String),
    #[error("no key matches {0:?}")]
    NoSuchKey(String),
    #[error("{0:?} matches several keys; give more characters or the whole key")]
    Ambiguous(String),
    #[error("key {id} has {solves} solves; cannot subtract {sub}")]
    BelowZero { id: String, solves: u64, sub: u64 },
    #[error("no solves remaining")]
    NoSolves,
    /// The key was revoked (or deleted) while a task of it was running.
    #[error("key revoked")]
    Revoked,
    /// The task ended elsewhere meanwhile (expired, or failed by the fleet as lost): not charged.
    #[error("task expired or ended elsewhere")]
    TaskGone,
    /// A copy would mix two ledgers' keys.
    #[error("{0} already has keys; copy into an empty ledger")]
    NotEmpty(String),
    #[error("could not generate a random key: {0}")]
    Random(String),
    #[error("{0}")]
    Io(String),
}

impl From<redb::Error> for LedgerError {
    fn from(e: redb::Error) -> Self {
        LedgerError::Db(e.to_string())
    }
}

// redb splits its errors by operation; they all convert into `redb::Error`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for LedgerError {
            fn from(e: $t) -> Self {
                LedgerError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

/// What a backup or a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupStats {
    /// Keys (revoked ones included).
    pub keys: u64,
    /// Per-minute usage buckets of the last 24 h.
    pub usage_rows: u64,
}

/// A key as stored (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyInfo {
    /// The first [`ID_LEN`] characters of the key.
    pub id: String,
    pub name: String,
    /// Remaining solve credits.
    pub solves: u64,
    /// Creation time, unix seconds.
    pub created: u64,
    pub revoked: bool,
}

impl KeyInfo {
    /// The record of the new key `key`, created now.
    fn new(key: &str, name: &str, solves: u64) -> KeyInfo {
        KeyInfo {
            id: key[..ID_LEN].to_string(),
            name: name.to_string(),
            solves,
            created: unix_now(),
            revoked: false,
        }
    }
}

/// A key with its rolling usage, as listed by `ocrbox keys list`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyRow {
    #[serde(flatten)]
    pub info: KeyInfo,
    /// Successful solves in the last 24 hours.
    pub last_24h: u64,
}

/// How `ocrbox keys credit` changes a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CreditChange {
    Add(u64),
    Sub(u64),
    Set(u64),
}

impl CreditChange {
    /// The new balance of `info`, or [`LedgerError::BelowZero`].
    pub fn apply(self, info: &KeyInfo) -> Result<u64, LedgerError> {
        match self {
            CreditChange::Add(n) => Ok(info.solves.saturating_add(n)),
            CreditChange::Set(n) => Ok(n),
            CreditChange::Sub(n) => {
                info.solves
                    .checked_sub(n)
                    .ok_or_else(|| LedgerError::BelowZero {
                        id: info.id.clone(),
                        solves: info.solves,
                        sub: n,
                    })
            }
        }
    }
}

impl std::str::FromStr for CreditChange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (op, n) = s.split_at(s.len().min(1));
        let n: u64 = n
            .parse()
            .map_err(|_| format!("expected +N, -N or =N, got {s:?}"))?;
        match op {
            "+" => Ok(CreditChange::Add(n)),
            "-" => Ok(CreditChange::Sub(n)),
            "=" => Ok(CreditChange::Set(n)),
            _ => Err(format!("expected +N, -N or =N, got {s:?}")),
        }
    }
}

/// Every key and the last 24 h of usage, as of one instant: what a backup or a copy moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub keys: Vec<(KeyHash, KeyInfo)>,
    /// (key, unix minute, successful solves in that minute).
    pub usage: Vec<(KeyHash, u64, u64)>,
}

impl Snapshot {
    /// Counts of what it holds.
    pub fn stats(&self) -> BackupStats {
        BackupStats {
            keys: self.keys.len() as u64,
            usage_rows: self.usage.len() as u64,
        }
    }
}

/// A finished task's outcome as a shared ledger keeps it, so any box can answer its poll:
/// `ok` (charged) or not, and the result as JSON (see `tasks::TaskState::record`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub ok: bool,
    pub body: String,
}

/// A task's claim on credits: which task, whose key, how many credits.
#[derive(Debug, Clone)]
pub struct Held {
    pub task: Uuid,
    pub key: KeyHash,
    /// Credits held: the task's page count once known.
    pub credits: u64,
}

/// The keys-and-credits store. Every method blocks (redb commits, database round trips): call
/// them from blocking threads, never on the async runtime.
pub trait Ledger: Send + Sync {
    /// Where the ledger lives, for messages (never a password).
    fn describe(&self) -> String;
    /// True when no key has ever been created. Also the health check's cheap read.
    fn is_empty(&self) -> Result<bool, LedgerError>;
    /// Creates a key with `solves` credits when the ledger has none (atomically: of several
    /// boxes starting at once on one database, one creates it). Returns the secret if created.
    fn first_key(&self, solves: u64) -> Result<Option<String>, LedgerError>;
    /// Creates a key with `solves` credits. Returns the secret (shown once) and its record.
    fn add_key(&self, name: &str, solves: u64) -> Result<(String, KeyInfo), LedgerError>;
    /// Looks a key up by its hash.
    fn get(&self, hash: &KeyHash) -> Result<Option<KeyInfo>, LedgerError>;
    /// Looks up an API key as given by a client: `None` if unknown or revoked.
    fn authenticate(&self, key: &str) -> Result<Option<(KeyHash, KeyInfo)>, LedgerError> {
        let hash = hash_key(key);
        Ok(self
            .get(&hash)?
            .filter(|info| !info.revoked)
            .map(|info| (hash, info)))
    }
    /// Successful solves of `hash` in the last 24 hours, to the minute.
    fn usage_24h(&self, hash: &KeyHash) -> Result<u64, LedgerError>;
    /// Drops usage buckets that have left the 24 h window.
    fn prune(&self) -> Result<(), LedgerError>;
    /// Changes the key named by `selector` (a whole key, or a unique prefix of its id) with
    /// `change`, in one transaction; returns the key as changed.
    fn update_key(
        &self,
        selector: &str,
        change: &dyn Fn(&mut KeyInfo) -> Result<(), LedgerError>,
    ) -> Result<KeyInfo, LedgerError>;
    /// Applies `change` to the balance of the key named by `selector`.
    fn credit(&self, selector: &str, change: CreditChange) -> Result<KeyInfo, LedgerError> {
        self.update_key(selector, &|info| {
            info.solves = change.apply(info)?;
            Ok(())
        })
    }
    /// Revokes the key named by `selector`; it answers 401 from then on. Credits are kept.
    fn revoke(&self, selector: &str) -> Result<KeyInfo, LedgerError> {
        self.update_key(selector, &|info| {
            info.revoked = true;
            Ok(())
        })
    }
    /// Every key with its 24 h usage, oldest first.
    fn list(&self) -> Result<Vec<KeyRow>, LedgerError>;
    /// Every key and usage bucket as of one read transaction.
    fn snapshot(&self) -> Result<Snapshot, LedgerError>;
    /// Writes `snapshot` into this ledger, which must have no key, in one transaction.
    fn restore(&self, snapshot: &Snapshot) -> Result<BackupStats, LedgerError>;
    /// Holds `credits` in all for `task` (growing its hold from `task.credits`), or answers
    /// [`LedgerError::NoSolves`] and keeps what it held when the key's unheld balance cannot
    /// cover the rest. Where tasks are shared, also (re)starts the task's lifetime.
    fn hold(&self, task: &Held, credits: u64) -> Result<(), LedgerError>;
    /// Deducts the held credits for a successful task and records its `record` (made only
    /// where tasks are shared), in one transaction; returns the remaining balance. On error
    /// nothing is charged and the hold stays until [`Ledger::fail`] or [`Ledger::release`].
    fn charge(&self, task: &Held, record: &dyn Fn() -> TaskRecord) -> Result<u64, LedgerError>;
    /// Ends a hold uncharged for a task that ran and failed, recording its `record` where
    /// tasks are shared. On error the hold stays (it ends with its task's lifetime at the
    /// latest).
    fn fail(&self, task: &Held, record: &dyn Fn() -> TaskRecord) -> Result<(), LedgerError>;
    /// Ends a hold uncharged for a task that never ran (refused, dropped at shutdown or in the
    /// queue). Never blocks for long and never fails, as it runs on drop.
    fn release(&self, task: &Held);
    /// Starts serving: a shared ledger announces this box (and keeps a heartbeat) so the other
    /// boxes can tell when it dies.
    fn join(&self) -> Result<(), LedgerError> {
        Ok(())
    }
    /// Stops serving: a shared ledger fails this box's unfinished tasks at once.
    fn leave(&self) {}
    /// True when tasks and results are kept in the ledger (so [`Ledger::task`] answers).
    fn shares_tasks(&self) -> bool {
        false
    }
    /// A shared task: its owner and, once it ended, its record (`None`: still in process).
    /// `Ok(None)` when unknown or expired.
    #[allow(clippy::type_complexity)]
    fn task(&self, _id: &Uuid) -> Result<Option<(KeyHash, Option<TaskRecord>)>, LedgerError> {
        Ok(None)
    }
}

/// Where a ledger lives, as given to `--db` / `--ledger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A redb file.
    File(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Location {
    /// A `postgres://` URL names a shared ledger; anything else is a file path.
    pub fn parse(s: &str) -> Location {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Location::Postgres(s.to_string())
        } else {
            Location::File(PathBuf::from(s))
        }
    }
}

/// Opens the ledger at `at` (a file is created if missing; a database gets its schema).
/// `task_ttl` is how long a shared task lives (unused for a file).
pub fn open(at: &Location, task_ttl: Duration) -> Result<Arc<dyn Ledger>, LedgerError> {
    Ok(match at {
        Location::File(path) => Arc::new(Local::open(path)?),
        Location::Postgres(url) => Arc::new(Postgres::connect(url, task_ttl)?),
    })
}

/// Copies every key and the 24 h usage of `from` into the empty ledger `to`.
pub fn copy(from: &dyn Ledger, to: &dyn Ledger) -> Result<BackupStats, LedgerError> {
    to.restore(&from.snapshot()?)
}

/// First pause between attempts at a ledger that does not answer (a shared database
/// restarting); each next pause is twice the last, up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between attempts: a database back after a restart is used within 2 s.
pub const RETRY_MAX: Duration = Duration::from_secs(2);

/// The pause after `pause` between attempts at an unavailable ledger.
pub fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(RETRY_MAX)
}

/// Hashes an API key for lookup.
pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Seconds since the unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A new random key (hex).
fn new_key() -> Result<String, LedgerError> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| LedgerError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A selector shorter than a key can only be an id prefix (only the id is stored in clear).
fn id_prefix(selector: &str) -> Result<&str, LedgerError> {
    if selector.is_empty() || selector.len() > ID_LEN {
        return Err(LedgerError::NoSuchKey(selector.to_string()));
    }
    Ok(selector)
}

/// Holds credits for one task in flight (one per page) and releases them, uncharged, when
/// dropped before [`Reservation::charge`] succeeded.
pub struct Reservation {
    ledger: Arc<dyn Ledger>,
    held: Held,
    /// Set once charged, failed or released.
    done: bool,
}

/// Holds one credit of `key` for a new task (its id is drawn here), or answers
/// [`LedgerError::NoSolves`] when every remaining credit is already held. A document of several
/// pages grows it with [`Reservation::extend_to`] once its pages are counted.
pub fn reserve(ledger: &Arc<dyn Ledger>, key: KeyHash) -> Result<Reservation, LedgerError> {
    let mut held = Held {
        task: Uuid::new_v4(),
        key,
        credits: 0,
    };
    ledger.hold(&held, 1)?;
    held.credits = 1;
    Ok(Reservation {
        ledger: Arc::clone(ledger),
        held,
        done: false,
    })
}

impl Reservation {
    /// The task this hold is for.
    pub fn task(&self) -> Uuid {
        self.held.task
    }

    /// The key this credit belongs to.
    pub fn key(&self) -> &KeyHash {
        &self.held.key
    }

    /// Credits held.
    pub fn credits(&self) -> u64 {
        self.held.credits
    }

    /// Holds `credits` in all (a document's page count) once the upload is in, or answers
    /// [`LedgerError::NoSolves`] and keeps what it held when the key's unheld balance cannot
    /// cover the rest. A shared ledger starts the task's lifetime here.
    pub fn extend_to(&mut self, credits: u64) -> Result<(), LedgerError> {
        let credits = credits.max(self.held.credits);
        self.ledger.hold(&self.held, credits)?;
        self.held.credits = credits;
        Ok(())
    }

    /// Deducts the held credits for a successful task and records its result; returns the
    /// remaining balance. On error nothing was charged and the hold remains: end it with
    /// [`Reservation::fail`] (or drop).
    pub fn charge(&mut self, record: &dyn Fn() -> TaskRecord) -> Result<u64, LedgerError> {
        let remaining = self.ledger.charge(&self.held, record)?;
        self.done = true;
        Ok(remaining)
    }

    /// Ends the hold uncharged for a task that failed, recording why where tasks are shared.
    /// On error the hold remains: try again, or drop.
    pub fn fail(&mut self, record: &dyn Fn() -> TaskRecord) -> Result<(), LedgerError> {
        self.ledger.fail(&self.held, record)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.ledger.release(&self.held);
        }
    }
}
