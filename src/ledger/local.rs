//! The single box's ledger: keys, credits and usage in one redb file (the default, `--db`).
//!
//! Credit holds of tasks in flight are kept in memory, per key: a submit is refused when
//! `solves - held == 0`, so concurrent submits can never overspend, and the balance on disk
//! changes only when a task is charged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    hash_key, id_prefix, new_key, unix_now, BackupStats, Held, KeyHash, KeyInfo, KeyRow, Ledger,
    LedgerError, Snapshot, TaskRecord, ID_LEN, WINDOW_MINUTES,
};

/// One row per API key, keyed by the SHA-256 of the key.
/// Value: (key id = first 8 chars of the key, name, remaining solves, created unix seconds, revoked).
const KEYS: TableDefinition<KeyHash, (String, String, u64, u64, bool)> =
    TableDefinition::new("keys");

/// Successful solves per key per minute: (key hash, unix minute) → count. Rows older than 24 h
/// are pruned by [`Ledger::prune`]; the rolling 24 h figure is the sum of the last 1440 minutes.
const USAGE: TableDefinition<(KeyHash, u64), u64> = TableDefinition::new("usage");

type KeyRowValue = (String, String, u64, u64, bool);

fn info_of(row: KeyRowValue) -> KeyInfo {
    let (id, name, solves, created, revoked) = row;
    KeyInfo {
        id,
        name,
        solves,
        created,
        revoked,
    }
}

fn row_of(info: &KeyInfo) -> KeyRowValue {
    (
        info.id.clone(),
        info.name.clone(),
        info.solves,
        info.created,
        info.revoked,
    )
}

/// The redb ledger plus the in-memory credit holds of tasks in flight.
pub struct Local {
    db: Database,
    /// The database file (backups made for the admin socket are staged beside it).
    path: PathBuf,
    /// Credits held by tasks accepted but not yet finished, per key.
    in_flight: Mutex<HashMap<KeyHash, u64>>,
}

impl Local {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Local, LedgerError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                LedgerError::InUse(path.display().to_string())
            }
            other => LedgerError::from(other),
        })?;
        // Create both tables up front so readers never meet a missing table.
        let txn = db.begin_write()?;
        txn.open_table(KEYS)?;
        txn.open_table(USAGE)?;
        txn.commit()?;
        Ok(Local {
            db,
            path: path.to_path_buf(),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    fn lock_holds(&self) -> std::sync::MutexGuard<'_, HashMap<KeyHash, u64>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release_locked(in_flight: &mut HashMap<KeyHash, u64>, hash: &KeyHash, credits: u64) {
        if let Some(n) = in_flight.get_mut(hash) {
            *n = n.saturating_sub(credits);
            if *n == 0 {
                in_flight.remove(hash);
            }
        }
    }

    /// Successful solves of `hash` in the 24 hours up to `now` (unix seconds), to the minute.
    pub fn usage_24h_at(&self, hash: &KeyHash, now: u64) -> Result<u64, LedgerError> {
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

    /// Drops usage buckets that left the 24 h window before `now`.
    pub fn prune_at(&self, now: u64) -> Result<(), LedgerError> {
        let first = (now / 60 + 1).saturating_sub(WINDOW_MINUTES);
        let txn = self.db.begin_write()?;
        {
            let mut usage = txn.open_table(USAGE)?;
            usage.retain(|(_, minute), _| minute >= first)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Deducts `credits` and counts as many solves in the minute of `now`, in one transaction;
    /// all or nothing.
    fn charge_at(&self, hash: &KeyHash, credits: u64, now: u64) -> Result<u64, LedgerError> {
        let txn = self.db.begin_write()?;
        let remaining = {
            let mut keys = txn.open_table(KEYS)?;
            let mut info = keys
                .get(hash)?
                .map(|g| info_of(g.value()))
                .ok_or(LedgerError::Revoked)?;
            // An administrator may have debited or revoked the key while the task ran.
            if info.revoked {
                return Err(LedgerError::Revoked);
            }
            if info.solves < credits {
                return Err(LedgerError::NoSolves);
            }
            info.solves -= credits;
            keys.insert(hash, row_of(&info))?;
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
        keys: &impl ReadableTable<KeyHash, KeyRowValue>,
        selector: &str,
    ) -> Result<(KeyHash, KeyInfo), LedgerError> {
        let hash = hash_key(selector);
        if let Some(g) = keys.get(&hash)? {
            return Ok((hash, info_of(g.value())));
        }
        let prefix = id_prefix(selector)?;
        let mut found = None;
        for row in keys.iter()? {
            let (k, v) = row?;
            let info = info_of(v.value());
            if info.id.starts_with(prefix) {
                if found.is_some() {
                    return Err(LedgerError::Ambiguous(selector.to_string()));
                }
                found = Some((k.value(), info));
            }
        }
        found.ok_or_else(|| LedgerError::NoSuchKey(selector.to_string()))
    }

    /// Writes a consistent copy of the ledger to `out` while the service runs: every key and
    /// usage bucket as of one read transaction (a charge is in it whole or not at all), into a
    /// new database at `out.tmp`, synced, then renamed over `out`. A write transaction waits
    /// for no reader in redb, so OCR traffic goes on meanwhile.
    pub fn backup(&self, out: &Path) -> Result<BackupStats, LedgerError> {
        write_file(&self.snapshot()?, out)
    }

    /// A backup as bytes (for the admin socket): staged in a file beside the database, the
    /// one directory the service may surely write (its unit makes the rest read-only).
    pub fn backup_bytes(&self) -> Result<(Vec<u8>, BackupStats), LedgerError> {
        // One name per backup: two admins may ask at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".backup-{}-{n}", std::process::id()));
        let staged = PathBuf::from(name);
        let stats = self.backup(&staged)?;
        let bytes = std::fs::read(&staged);
        let _ = std::fs::remove_file(&staged);
        let bytes = bytes.map_err(|e| LedgerError::Io(format!("{}: {e}", staged.display())))?;
        Ok((bytes, stats))
    }
}

/// Writes `snapshot` as a new redb file at `out` (through `out.tmp`, renamed when complete).
pub fn write_file(snapshot: &super::Snapshot, out: &Path) -> Result<BackupStats, LedgerError> {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let stats = Local::open(&tmp).and_then(|copy| copy.restore(snapshot));
    let stats = stats.and_then(|stats| {
        std::fs::rename(&tmp, out)
            .map(|()| stats)
            .map_err(|e| LedgerError::Io(format!("{}: {e}", out.display())))
    });
    if stats.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    stats
}

impl Ledger for Local {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn is_empty(&self) -> Result<bool, LedgerError> {
        let txn = self.db.begin_read()?;
        let keys = txn.open_table(KEYS)?;
        let empty = keys.first()?.is_none();
        Ok(empty)
    }

    fn first_key(&self, solves: u64) -> Result<Option<String>, LedgerError> {
        // One process holds the file: no other writer can race this check.
        if !self.is_empty()? {
            return Ok(None);
        }
        Ok(Some(self.add_key("first key", solves)?.0))
    }

    fn add_key(&self, name: &str, solves: u64) -> Result<(String, KeyInfo), LedgerError> {
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
            let info = KeyInfo::new(&key, name, solves);
            keys.insert(hash_key(&key), row_of(&info))?;
            (key, info)
        };
        txn.commit()?;
        Ok(result)
    }

    fn get(&self, hash: &KeyHash) -> Result<Option<KeyInfo>, LedgerError> {
        let txn = self.db.begin_read()?;
        let keys = txn.open_table(KEYS)?;
        Ok(keys.get(hash)?.map(|g| info_of(g.value())))
    }

    fn usage_24h(&self, hash: &KeyHash) -> Result<u64, LedgerError> {
        self.usage_24h_at(hash, unix_now())
    }

    fn prune(&self) -> Result<(), LedgerError> {
        self.prune_at(unix_now())
    }

    fn update_key(
        &self,
        selector: &str,
        change: &dyn Fn(&mut KeyInfo) -> Result<(), LedgerError>,
    ) -> Result<KeyInfo, LedgerError> {
        let txn = self.db.begin_write()?;
        let info = {
            let mut keys = txn.open_table(KEYS)?;
            let (hash, mut info) = Self::resolve(&keys, selector)?;
            change(&mut info)?;
            keys.insert(hash, row_of(&info))?;
            info
        };
        txn.commit()?;
        Ok(info)
    }

    fn list(&self) -> Result<Vec<KeyRow>, LedgerError> {
        let now = unix_now();
        let mut rows = Vec::new();
        {
            let txn = self.db.begin_read()?;
            let keys = txn.open_table(KEYS)?;
            for row in keys.iter()? {
                let (k, v) = row?;
                rows.push((k.value(), info_of(v.value())));
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for (hash, info) in rows {
            let last_24h = self.usage_24h_at(&hash, now)?;
            out.push(KeyRow { info, last_24h });
        }
        out.sort_by(|a, b| (a.info.created, &a.info.id).cmp(&(b.info.created, &b.info.id)));
        Ok(out)
    }

    fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        let read = self.db.begin_read()?;
        let mut snapshot = Snapshot::default();
        for row in read.open_table(KEYS)?.iter()? {
            let (k, v) = row?;
            snapshot.keys.push((k.value(), info_of(v.value())));
        }
        for row in read.open_table(USAGE)?.iter()? {
            let (k, v) = row?;
            let (hash, minute) = k.value();
            snapshot.usage.push((hash, minute, v.value()));
        }
        Ok(snapshot)
    }

    fn restore(&self, snapshot: &Snapshot) -> Result<BackupStats, LedgerError> {
        if !self.is_empty()? {
            return Err(LedgerError::NotEmpty(self.describe()));
        }
        let write = self.db.begin_write()?;
        {
            let mut keys = write.open_table(KEYS)?;
            for (hash, info) in &snapshot.keys {
                keys.insert(hash, row_of(info))?;
            }
            let mut usage = write.open_table(USAGE)?;
            for (hash, minute, count) in &snapshot.usage {
                usage.insert((*hash, *minute), count)?;
            }
        }
        write.commit()?;
        Ok(snapshot.stats())
    }

    fn hold(&self, task: &Held, credits: u64) -> Result<(), LedgerError> {
        let more = credits.saturating_sub(task.credits);
        if more == 0 {
            return Ok(());
        }
        // The lock spans the balance read so two submits cannot both take the last credit.
        let mut in_flight = self.lock_holds();
        let solves = self
            .get(&task.key)?
            .filter(|i| !i.revoked)
            .map_or(0, |i| i.solves);
        let held = in_flight.entry(task.key).or_insert(0);
        if solves < *held + more {
            if *held == 0 {
                in_flight.remove(&task.key);
            }
            return Err(LedgerError::NoSolves);
        }
        *held += more;
        Ok(())
    }

    fn charge(&self, task: &Held, _record: &dyn Fn() -> TaskRecord) -> Result<u64, LedgerError> {
        // Deduct and release under the hold lock, so a concurrent submit sees either the old
        // balance with this hold or the new balance without it: never the old balance without
        // it (overspending) nor the new one with it (a false 402).
        let mut in_flight = self.lock_holds();
        let remaining = self.charge_at(&task.key, task.credits, unix_now())?;
        Self::release_locked(&mut in_flight, &task.key, task.credits);
        Ok(remaining)
    }

    fn fail(&self, task: &Held, _record: &dyn Fn() -> TaskRecord) -> Result<(), LedgerError> {
        self.release(task);
        Ok(())
    }

    fn release(&self, task: &Held) {
        Self::release_locked(&mut self.lock_holds(), &task.key, task.credits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{reserve, CreditChange, Reservation};
    use std::sync::Arc;

    fn hold(l: &Arc<Local>, key: KeyHash) -> Result<Reservation, LedgerError> {
        reserve(&(Arc::clone(l) as Arc<dyn Ledger>), key)
    }

    fn charge(mut r: Reservation) -> Result<u64, LedgerError> {
        r.charge(&|| TaskRecord {
            ok: true,
            body: String::new(),
        })
    }

    fn temp_ledger() -> (Arc<Local>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ocrbox-ledger-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        (Arc::new(Local::open(&dir.join("db")).unwrap()), dir)
    }

    #[test]
    fn reservations_cap_in_flight_and_charge_once() {
        let (ledger, dir) = temp_ledger();
        let (key, info) = ledger.add_key("t", 2).unwrap();
        assert_eq!(info.id, &key[..ID_LEN]);
        let (hash, _) = ledger.authenticate(&key).unwrap().unwrap();
        let a = hold(&ledger, hash).unwrap();
        let b = hold(&ledger, hash).unwrap();
        assert!(matches!(hold(&ledger, hash), Err(LedgerError::NoSolves)));
        drop(b); // failed task: released, not charged
        assert_eq!(charge(a).unwrap(), 1);
        let c = hold(&ledger, hash).unwrap();
        assert_eq!(charge(c).unwrap(), 0);
        assert!(matches!(hold(&ledger, hash), Err(LedgerError::NoSolves)));
        assert_eq!(ledger.usage_24h_at(&hash, unix_now()).unwrap(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_document_holds_one_credit_per_page_all_or_nothing() {
        let (ledger, dir) = temp_ledger();
        let (key, _) = ledger.add_key("t", 5).unwrap();
        let hash = hash_key(&key);
        let mut doc = hold(&ledger, hash).unwrap();
        doc.extend_to(3).unwrap();
        let other = hold(&ledger, hash).unwrap();
        let mut big = hold(&ledger, hash).unwrap();
        // 5 credits: 3 + 1 held, so this one cannot grow to 2 and still holds its 1.
        assert!(matches!(big.extend_to(2), Err(LedgerError::NoSolves)));
        assert_eq!(big.credits(), 1);
        assert!(matches!(hold(&ledger, hash), Err(LedgerError::NoSolves)));
        drop(big);
        drop(other);
        assert_eq!(charge(doc).unwrap(), 2);
        assert_eq!(ledger.usage_24h_at(&hash, unix_now()).unwrap(), 3);
        // A charge the balance cannot cover (an administrator's debit meanwhile) takes nothing.
        let mut doc = hold(&ledger, hash).unwrap();
        doc.extend_to(2).unwrap();
        ledger.credit(&key, CreditChange::Set(1)).unwrap();
        assert!(matches!(charge(doc), Err(LedgerError::NoSolves)));
        assert_eq!(ledger.get(&hash).unwrap().unwrap().solves, 1);
        assert!(hold(&ledger, hash).is_ok());
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
                std::thread::spawn(move || hold(&ledger, hash).ok().map(|r| charge(r).unwrap()))
            })
            .collect();
        let charged = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .count();
        assert_eq!(charged, 10);
        assert_eq!(ledger.get(&hash).unwrap().unwrap().solves, 0);
        assert_eq!(ledger.usage_24h_at(&hash, unix_now()).unwrap(), 10);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn usage_window_is_24h_to_the_minute() {
        let (ledger, dir) = temp_ledger();
        let (key, _) = ledger.add_key("t", 10).unwrap();
        let hash = hash_key(&key);
        let t0 = 1_000_000 * 60;
        ledger.charge_at(&hash, 1, t0).unwrap();
        ledger.charge_at(&hash, 1, t0 + 60).unwrap();
        assert_eq!(ledger.usage_24h_at(&hash, t0 + 60).unwrap(), 2);
        assert_eq!(ledger.usage_24h_at(&hash, t0 + 24 * 3600 - 1).unwrap(), 2);
        assert_eq!(ledger.usage_24h_at(&hash, t0 + 24 * 3600).unwrap(), 1);
        ledger.prune_at(t0 + 24 * 3600).unwrap();
        assert_eq!(ledger.usage_24h_at(&hash, t0 + 60).unwrap(), 1);
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
