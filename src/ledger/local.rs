//! API keys, solve credits and 24-hour usage, kept in one redb file.
//!
//! Keys are stored only as their SHA-256; the first [`ID_LEN`] characters of each key are kept in
//! clear as a short, non-secret *key id* so administrators can name a key without the secret
//! (`ocrbox keys credit 3f9a01bc +100`). Keys carry 160 random bits, so the 32 bits revealed by
//! the id still leave 128 secret bits.
//!
//! Credits are exact: a credit is *reserved* in memory when a task is accepted
//! ([`Ledger::reserve`]) and *deducted* on disk only when OCR succeeds ([`Reservation::charge`]),
//! in the same write transaction that records the usage. A reservation that is dropped without
//! being charged (failed OCR, expired task, shutdown) simply releases itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

/// SHA-256 of an API key: how keys are identified at rest and in memory.
pub type KeyHash = [u8; 32];

/// One row per API key, keyed by the SHA-256 of the key.
/// Value: (key id = first 8 chars of the key, name, remaining solves, created unix seconds, revoked).
const KEYS: TableDefinition<KeyHash, (String, String, u64, u64, bool)> =
    TableDefinition::new("keys");

/// Successful solves per key per minute: (key hash, unix minute) → count. Rows older than 24 h
/// are pruned by [`Ledger::prune`]; the rolling 24 h figure is the sum of the last 1440 minutes.
const USAGE: TableDefinition<(KeyHash, u64), u64> = TableDefinition::new("usage");

/// Length of the visible key id (a prefix of the key).
pub const ID_LEN: usize = 8;
/// Random bytes in a new key (160 bits; hex-encoded to 40 characters).
const KEY_BYTES: usize = 20;
/// Minutes in the rolling usage window.
const WINDOW_MINUTES: u64 = 24 * 60;

/// What can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database is held by another process (usually a running `ocrbox serve`).
    #[error("database {0} is in use by another process (is `ocrbox serve` running?)")]
    InUse(String),
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
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
    #[error("could not generate a random key: {0}")]
    Random(String),
    #[error("{0}")]
    Io(String),
}

/// What a backup copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupStats {
    /// Keys (revoked ones included).
    pub keys: u64,
    /// Per-minute usage buckets of the last 24 h.
    pub usage_rows: u64,
}

// redb splits its errors by operation; they all convert into `redb::Error`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for LedgerError {
            fn from(e: $t) -> Self {
                LedgerError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

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
    fn from_row(row: (String, String, u64, u64, bool)) -> KeyInfo {
        let (id, name, solves, created, revoked) = row;
        KeyInfo {
            id,
            name,
            solves,
            created,
            revoked,
        }
    }

    fn to_row(&self) -> (String, String, u64, u64, bool) {
        (
            self.id.clone(),
            self.name.clone(),
            self.solves,
            self.created,
            self.revoked,
        )
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

/// The key/credit database plus the in-memory credit reservations of tasks in flight.
pub struct Ledger {
    db: Database,
    /// The database file (backups made for the admin socket are staged beside it).
    path: std::path::PathBuf,
    /// Tasks accepted but not yet finished, per key. Submit refuses when
    /// `solves - in_flight == 0`, so concurrent submits can never overspend.
    in_flight: Mutex<HashMap<KeyHash, u64>>,
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

fn new_key() -> Result<String, LedgerError> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| LedgerError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Ledger {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                LedgerError::InUse(path.display().to_string())
            }
            other => LedgerError::Db(other.into()),
        })?;
        // Create both tables up front so readers never meet a missing table.
        let txn = db.begin_write()?;
        txn.open_table(KEYS)?;
        txn.open_table(USAGE)?;
        txn.commit()?;
        Ok(Ledger {
            db,
            path: path.to_path_buf(),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// True when no key has ever been created.
    pub fn is_empty(&self) -> Result<bool, LedgerError> {
        let txn = self.db.begin_read()?;
        let keys = txn.open_table(KEYS)?;
        let empty = keys.first()?.is_none();
        Ok(empty)
    }

    /// Creates a key with `solves` credits. Returns the secret (shown once) and its record.
    pub fn add_key(&self, name: &str, solves: u64) -> Result<(String, KeyInfo), LedgerError> {
        let txn = self.db.begin_write()?;
        let result = {
            let mut keys = txn.open_table(KEYS)?;
            // Ids must stay unique to be useful as selectors; on the rare clash, draw again.
            let key = loop {
                let key = new_key()?;
                let id = &key[..ID_LEN];
                let mut clash = false;
                for row in keys.iter()? {
                    if row?.1.value().0 == id {
                        clash = true;
                        break;
                    }
                }
                if !clash {
                    break key;
                }
            };
            let info = KeyInfo {
                id: key[..ID_LEN].to_string(),
                name: name.to_string(),
                solves,
                created: unix_now(),
                revoked: false,
            };
            keys.insert(hash_key(&key), info.to_row())?;
            (key, info)
        };
        txn.commit()?;
        Ok(result)
    }

    /// Looks a key up by its hash.
    pub fn get(&self, hash: &KeyHash) -> Result<Option<KeyInfo>, LedgerError> {
        let txn = self.db.begin_read()?;
        let keys = txn.open_table(KEYS)?;
        Ok(keys.get(hash)?.map(|g| KeyInfo::from_row(g.value())))
    }

    /// Looks up an API key as given by a client: `None` if unknown or revoked.
    pub fn authenticate(&self, key: &str) -> Result<Option<(KeyHash, KeyInfo)>, LedgerError> {
        let hash = hash_key(key);
        Ok(self
            .get(&hash)?
            .filter(|info| !info.revoked)
            .map(|info| (hash, info)))
    }

    /// Successful solves of `hash` in the 24 hours up to `now` (unix seconds), to the minute.
    pub fn usage_24h(&self, hash: &KeyHash, now: u64) -> Result<u64, LedgerError> {
        let txn = self.db.begin_read()?;
        let usage = txn.open_table(USAGE)?;
        let minute = now / 60;
        let first = (minute + 1).saturating_sub(WINDOW_MINUTES);
        let mut total = 0;
        for row in usage.range((*hash, first)..=(*hash, minute))? {
            total += row?.1.value();
        }
        Ok(total)
    }

    /// Drops usage buckets that have left the 24 h window.
    pub fn prune(&self, now: u64) -> Result<(), LedgerError> {
        let first = (now / 60 + 1).saturating_sub(WINDOW_MINUTES);
        let txn = self.db.begin_write()?;
        {
            let mut usage = txn.open_table(USAGE)?;
            usage.retain(|(_, minute), _| minute >= first)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Reserves one credit of `hash` for a task about to be queued, or answers
    /// [`LedgerError::NoSolves`] when every remaining credit is already reserved. A document of
    /// several pages grows it with [`Reservation::extend_to`] once its pages are counted.
    pub fn reserve(self: &Arc<Self>, hash: KeyHash) -> Result<Reservation, LedgerError> {
        let mut reservation = Reservation {
            ledger: Arc::clone(self),
            hash,
            credits: 0,
            done: false,
        };
        reservation.extend_to(1)?;
        Ok(reservation)
    }

    fn release(&self, hash: &KeyHash, credits: u64) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        Self::release_locked(&mut in_flight, hash, credits);
    }

    fn release_locked(in_flight: &mut HashMap<KeyHash, u64>, hash: &KeyHash, credits: u64) {
        if let Some(n) = in_flight.get_mut(hash) {
            *n = n.saturating_sub(credits);
            if *n == 0 {
                in_flight.remove(hash);
            }
        }
    }

    /// Deducts `credits` and counts as many solves in the current minute, in one transaction;
    /// all or nothing.
    fn charge(&self, hash: &KeyHash, credits: u64, now: u64) -> Result<u64, LedgerError> {
        let txn = self.db.begin_write()?;
        let remaining = {
            let mut keys = txn.open_table(KEYS)?;
            let mut info = keys
                .get(hash)?
                .map(|g| KeyInfo::from_row(g.value()))
                .ok_or(LedgerError::Revoked)?;
            // An administrator may have debited or revoked the key while the task ran.
            if info.revoked {
                return Err(LedgerError::Revoked);
            }
            if info.solves < credits {
                return Err(LedgerError::NoSolves);
            }
            info.solves -= credits;
            keys.insert(hash, info.to_row())?;
            let mut usage = txn.open_table(USAGE)?;
            let bucket = (*hash, now / 60);
            let count = usage.get(&bucket)?.map_or(0, |g| g.value());
            usage.insert(bucket, count + credits)?;
            info.solves
        };
        txn.commit()?;
        Ok(remaining)
    }

    /// Finds the single key named by a full key or by a prefix of its id.
    fn resolve(
        keys: &impl ReadableTable<KeyHash, (String, String, u64, u64, bool)>,
        selector: &str,
    ) -> Result<(KeyHash, KeyInfo), LedgerError> {
        let hash = hash_key(selector);
        if let Some(g) = keys.get(&hash)? {
            return Ok((hash, KeyInfo::from_row(g.value())));
        }
        // Only the id is stored in clear, so a longer selector must be a whole key (checked above).
        let prefix = &selector[..selector.len().min(ID_LEN)];
        if selector.is_empty() || selector.len() > ID_LEN {
            return Err(LedgerError::NoSuchKey(selector.to_string()));
        }
        let mut found = None;
        for row in keys.iter()? {
            let (k, v) = row?;
            let info = KeyInfo::from_row(v.value());
            if info.id.starts_with(prefix) {
                if found.is_some() {
                    return Err(LedgerError::Ambiguous(selector.to_string()));
                }
                found = Some((k.value(), info));
            }
        }
        found.ok_or_else(|| LedgerError::NoSuchKey(selector.to_string()))
    }

    /// Applies `change` to the balance of the key named by `selector`.
    pub fn credit(&self, selector: &str, change: CreditChange) -> Result<KeyInfo, LedgerError> {
        let txn = self.db.begin_write()?;
        let info = {
            let mut keys = txn.open_table(KEYS)?;
            let (hash, mut info) = Self::resolve(&keys, selector)?;
            info.solves = match change {
                CreditChange::Add(n) => info.solves.saturating_add(n),
                CreditChange::Set(n) => n,
                CreditChange::Sub(n) => {
                    info.solves
                        .checked_sub(n)
                        .ok_or_else(|| LedgerError::BelowZero {
                            id: info.id.clone(),
                            solves: info.solves,
                            sub: n,
                        })?
                }
            };
            keys.insert(hash, info.to_row())?;
            info
        };
        txn.commit()?;
        Ok(info)
    }

    /// Revokes the key named by `selector`; it answers 401 from then on. Credits are kept.
    pub fn revoke(&self, selector: &str) -> Result<KeyInfo, LedgerError> {
        let txn = self.db.begin_write()?;
        let info = {
            let mut keys = txn.open_table(KEYS)?;
            let (hash, mut info) = Self::resolve(&keys, selector)?;
            info.revoked = true;
            keys.insert(hash, info.to_row())?;
            info
        };
        txn.commit()?;
        Ok(info)
    }

    /// Writes a consistent copy of the ledger to `out` while the service runs: every key and
    /// usage bucket as of one read transaction (a charge is in it whole or not at all), into a
    /// new database at `out.tmp`, synced, then renamed over `out`. A write transaction waits
    /// for no reader in redb, so OCR traffic goes on meanwhile.
    pub fn backup(&self, out: &Path) -> Result<BackupStats, LedgerError> {
        let mut tmp = out.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let copy = Database::create(&tmp).map_err(|e| LedgerError::Db(e.into()))?;
        let mut stats = BackupStats::default();
        {
            let read = self.db.begin_read()?;
            let write = copy.begin_write()?;
            {
                let mut keys = write.open_table(KEYS)?;
                for row in read.open_table(KEYS)?.iter()? {
                    let (k, v) = row?;
                    keys.insert(k.value(), v.value())?;
                    stats.keys += 1;
                }
                let mut usage = write.open_table(USAGE)?;
                for row in read.open_table(USAGE)?.iter()? {
                    let (k, v) = row?;
                    usage.insert(k.value(), v.value())?;
                    stats.usage_rows += 1;
                }
            }
            write.commit()?;
        }
        drop(copy);
        std::fs::rename(&tmp, out).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            LedgerError::Io(format!("{}: {e}", out.display()))
        })?;
        Ok(stats)
    }

    /// A backup as bytes (for the admin socket): staged in a file beside the database, the
    /// one directory the service may surely write (its unit makes the rest read-only).
    pub fn backup_bytes(&self) -> Result<(Vec<u8>, BackupStats), LedgerError> {
        // One name per backup: two admins may ask at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".backup-{}-{n}", std::process::id()));
        let staged = std::path::PathBuf::from(name);
        let stats = self.backup(&staged)?;
        let bytes = std::fs::read(&staged);
        let _ = std::fs::remove_file(&staged);
        let bytes = bytes.map_err(|e| LedgerError::Io(format!("{}: {e}", staged.display())))?;
        Ok((bytes, stats))
    }

    /// Every key with its 24 h usage, oldest first.
    pub fn list(&self) -> Result<Vec<KeyRow>, LedgerError> {
        let now = unix_now();
        let mut rows = Vec::new();
        {
            let txn = self.db.begin_read()?;
            let keys = txn.open_table(KEYS)?;
            for row in keys.iter()? {
                let (k, v) = row?;
                rows.push((k.value(), KeyInfo::from_row(v.value())));
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for (hash, info) in rows {
            let last_24h = self.usage_24h(&hash, now)?;
            out.push(KeyRow { info, last_24h });
        }
        out.sort_by(|a, b| (a.info.created, &a.info.id).cmp(&(b.info.created, &b.info.id)));
        Ok(out)
    }
}

/// The credits held for one task in flight (one per page). Dropping it releases them uncharged.
pub struct Reservation {
    ledger: Arc<Ledger>,
    hash: KeyHash,
    /// Credits held: the task's page count once known.
    credits: u64,
    /// Set once the credits were charged (and the reservation released with them).
    done: bool,
}

impl Reservation {
    /// The key this credit belongs to.
    pub fn key(&self) -> &KeyHash {
        &self.hash
    }

    /// Credits held.
    pub fn credits(&self) -> u64 {
        self.credits
    }

    /// Holds `credits` in all (a document's page count), or answers [`LedgerError::NoSolves`]
    /// and keeps what it held when the key's unreserved balance cannot cover the rest.
    pub fn extend_to(&mut self, credits: u64) -> Result<(), LedgerError> {
        let more = credits.saturating_sub(self.credits);
        if more == 0 {
            return Ok(());
        }
        // The lock spans the balance read so two submits cannot both take the last credit.
        let mut in_flight = self
            .ledger
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let solves = self
            .ledger
            .get(&self.hash)?
            .filter(|i| !i.revoked)
            .map_or(0, |i| i.solves);
        let reserved = in_flight.entry(self.hash).or_insert(0);
        if solves < *reserved + more {
            if *reserved == 0 {
                in_flight.remove(&self.hash);
            }
            return Err(LedgerError::NoSolves);
        }
        *reserved += more;
        self.credits = credits;
        Ok(())
    }

    /// Deducts the held credits for a successful solve; returns the remaining balance.
    pub fn charge(mut self) -> Result<u64, LedgerError> {
        // Deduct and release under the reservation lock, so a concurrent submit sees either the
        // old balance with this reservation or the new balance without it: never the old balance
        // without it (overspending) nor the new one with it (a false 402).
        let mut in_flight = self
            .ledger
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let result = self.ledger.charge(&self.hash, self.credits, unix_now());
        Ledger::release_locked(&mut in_flight, &self.hash, self.credits);
        self.done = true;
        result
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.ledger.release(&self.hash, self.credits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_ledger() -> (Arc<Ledger>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ocrbox-ledger-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        (Arc::new(Ledger::open(&dir.join("db")).unwrap()), dir)
    }

    #[test]
    fn reservations_cap_in_flight_and_charge_once() {
        let (ledger, dir) = temp_ledger();
        let (key, info) = ledger.add_key("t", 2).unwrap();
        assert_eq!(info.id, &key[..ID_LEN]);
        let (hash, _) = ledger.authenticate(&key).unwrap().unwrap();
        let a = ledger.reserve(hash).unwrap();
        let b = ledger.reserve(hash).unwrap();
        assert!(matches!(ledger.reserve(hash), Err(LedgerError::NoSolves)));
        drop(b); // failed task: released, not charged
        assert_eq!(a.charge().unwrap(), 1);
        let c = ledger.reserve(hash).unwrap();
        assert_eq!(c.charge().unwrap(), 0);
        assert!(matches!(ledger.reserve(hash), Err(LedgerError::NoSolves)));
        assert_eq!(ledger.usage_24h(&hash, unix_now()).unwrap(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_document_holds_one_credit_per_page_all_or_nothing() {
        let (ledger, dir) = temp_ledger();
        let (key, _) = ledger.add_key("t", 5).unwrap();
        let hash = hash_key(&key);
        let mut doc = ledger.reserve(hash).unwrap();
        doc.extend_to(3).unwrap();
        let other = ledger.reserve(hash).unwrap();
        let mut big = ledger.reserve(hash).unwrap();
        // 5 credits: 3 + 1 held, so this one cannot grow to 2 and still holds its 1.
        assert!(matches!(big.extend_to(2), Err(LedgerError::NoSolves)));
        assert_eq!(big.credits(), 1);
        assert!(matches!(ledger.reserve(hash), Err(LedgerError::NoSolves)));
        drop(big);
        drop(other);
        assert_eq!(doc.charge().unwrap(), 2);
        assert_eq!(ledger.usage_24h(&hash, unix_now()).unwrap(), 3);
        // A charge the balance cannot cover (an administrator's debit meanwhile) takes nothing.
        let mut doc = ledger.reserve(hash).unwrap();
        doc.extend_to(2).unwrap();
        ledger.credit(&key, CreditChange::Set(1)).unwrap();
        assert!(matches!(doc.charge(), Err(LedgerError::NoSolves)));
        assert_eq!(ledger.get(&hash).unwrap().unwrap().solves, 1);
        assert!(ledger.reserve(hash).is_ok());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn concurrent_reserve_and_charge_never_overspend() {
        let (ledger, dir) = temp_ledger();
        let (key, _) = ledger.add_key("t", 10).unwrap();
        let hash = hash_key(&key);
        let threads: Vec<_> = (0..50)
            .map(|_| {
                let ledger = Arc::clone(&ledger);
                std::thread::spawn(move || ledger.reserve(hash).ok().map(|r| r.charge().unwrap()))
            })
            .collect();
        let charged = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .count();
        assert_eq!(charged, 10);
        assert_eq!(ledger.get(&hash).unwrap().unwrap().solves, 0);
        assert_eq!(ledger.usage_24h(&hash, unix_now()).unwrap(), 10);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn usage_window_is_24h_to_the_minute() {
        let (ledger, dir) = temp_ledger();
        let (key, _) = ledger.add_key("t", 10).unwrap();
        let hash = hash_key(&key);
        let t0 = 1_000_000 * 60;
        ledger.charge(&hash, 1, t0).unwrap();
        ledger.charge(&hash, 1, t0 + 60).unwrap();
        assert_eq!(ledger.usage_24h(&hash, t0 + 60).unwrap(), 2);
        assert_eq!(ledger.usage_24h(&hash, t0 + 24 * 3600 - 1).unwrap(), 2);
        assert_eq!(ledger.usage_24h(&hash, t0 + 24 * 3600).unwrap(), 1);
        ledger.prune(t0 + 24 * 3600).unwrap();
        assert_eq!(ledger.usage_24h(&hash, t0 + 60).unwrap(), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn credit_and_revoke_by_id_prefix() {
        let (ledger, dir) = temp_ledger();
        let (key, info) = ledger.add_key("t", 5).unwrap();
        assert_eq!(
            ledger
                .credit(&info.id, CreditChange::Add(3))
                .unwrap()
                .solves,
            8
        );
        assert_eq!(ledger.credit(&key, CreditChange::Set(1)).unwrap().solves, 1);
        assert!(matches!(
            ledger.credit(&info.id, CreditChange::Sub(2)),
            Err(LedgerError::BelowZero { .. })
        ));
        assert!(ledger.revoke(&info.id[..6]).unwrap().revoked);
        assert!(ledger.authenticate(&key).unwrap().is_none());
        assert!("+5".parse::<CreditChange>().is_ok());
        assert!("5".parse::<CreditChange>().is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
