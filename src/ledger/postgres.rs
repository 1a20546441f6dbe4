//! The fleet's ledger: keys, credits, usage *and tasks* in one PostgreSQL database, shared by
//! several boxes behind a load balancer (`--ledger postgres://…`).
//!
//! Every rule of the single box holds across boxes because each one is a transaction on rows
//! the boxes share:
//! - a task's credits are held by its row in `tasks` (state `in_process`): a submit locks the
//!   key's row, adds the holds of the key's live tasks on every box, and inserts its own;
//! - a charge locks the key's row, deducts, counts the usage minute and stores the task's result
//!   in one transaction, and only while the task is still `in_process` and unexpired, so a
//!   result is never charged twice nor charged and lost;
//! - each box writes a heartbeat into `boxes`; every box fails the `in_process` tasks of a box
//!   silent for [`BOX_DEAD_AFTER`] (their credits return) and deletes expired tasks.
//!
//! Images never reach the database: they stay in the memory of the box that accepted them.
//! Time is the database's (`now()`), so the boxes' clocks need not agree.
//!
//! The interface is blocking like the redb ledger's: calls run on a small runtime of this
//! ledger's own, through a pool of connections, each bounded by [`OP_TIMEOUT`]; a database that
//! is down or slow answers [`LedgerError::Unavailable`] (the API's 503 with `Retry-After`).

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, Row, Transaction};
use uuid::Uuid;

use super::{
    hash_key, id_prefix, new_key, next_pause, BackupStats, Held, KeyHash, KeyInfo, KeyRow, Ledger,
    LedgerError, Snapshot, TaskRecord, RETRY_FIRST, WINDOW_MINUTES,
};

/// Longest wait for one ledger operation (pool, queries, commit), and the server-side
/// statement timeout. A submit waits this long at most before its 503.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per box: ledger calls are short; 16 cover 2 workers plus a burst of submits
/// and polls (300 concurrent submits over 3 boxes held fewer than 10 busy at once).
const POOL_SIZE: usize = 16;
/// How often a box writes its heartbeat and reaps tasks.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A box silent this long is taken for dead: its tasks in process are failed, uncharged.
/// Five heartbeats, so one slow commit or a brief network hiccup does not fail live work.
const BOX_DEAD_AFTER: Duration = Duration::from_secs(10);
/// Advisory lock keys ("ocrb" in ASCII, then a number): schema migrations, first key.
const LOCK_MIGRATE: i64 = 0x6f63_7262_0000_0001;
const LOCK_FIRST_KEY: i64 = 0x6f63_7262_0000_0002;

/// The current unix minute, in the database's clock.
const NOW_MINUTE: &str = "(floor(extract(epoch FROM now()) / 60))::bigint";

/// Versioned schema, applied in order under an advisory lock, so several boxes starting at once
/// on an empty database create it once. Never edit a released step: add the next one.
const MIGRATIONS: &[&str] = &[
    // 1: keys, usage per minute, boxes, tasks.
    "CREATE TABLE keys (
        hash bytea PRIMARY KEY CHECK (length(hash) = 32),
        id text NOT NULL UNIQUE,
        name text NOT NULL,
        solves bigint NOT NULL CHECK (solves >= 0),
        created bigint NOT NULL,
        revoked boolean NOT NULL DEFAULT false
    );
    CREATE TABLE usage (
        hash bytea NOT NULL REFERENCES keys (hash),
        minute bigint NOT NULL,
        count bigint NOT NULL CHECK (count > 0),
        PRIMARY KEY (hash, minute)
    );
    CREATE TABLE boxes (
        id uuid PRIMARY KEY,
        started timestamptz NOT NULL DEFAULT now(),
        seen timestamptz NOT NULL
    );
    CREATE TABLE tasks (
        id uuid PRIMARY KEY,
        owner bytea NOT NULL,
        box uuid NOT NULL,
        credits bigint NOT NULL CHECK (credits > 0),
        state text NOT NULL CHECK (state IN ('in_process', 'done', 'failed')),
        body text,
        created timestamptz NOT NULL DEFAULT now(),
        expires timestamptz NOT NULL
    );
    CREATE INDEX tasks_held ON tasks (owner) WHERE state = 'in_process';
    CREATE INDEX tasks_expires ON tasks (expires);",
];

/// A ledger in PostgreSQL.
pub struct Postgres {
    pool: Pool,
    /// This ledger's own runtime (one thread) that drives the connections; `None` once dropped.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// How long a task lives after its upload is in.
    ttl: Duration,
    /// This process, as its tasks and heartbeat name it.
    box_id: Uuid,
    /// `postgres://user@host:port/db`, for messages.
    target: String,
}

impl Postgres {
    /// Connects to the database at `url` and brings its schema up to date.
    pub fn connect(url: &str, ttl: Duration) -> Result<Postgres, LedgerError> {
        let mut cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| LedgerError::Db(format!("invalid ledger URL: {e}")))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT_TIMEOUT);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("ocrbox");
        }
        // The server gives up on a statement we would have stopped waiting for anyway.
        let timeout = format!("-c statement_timeout={}", OP_TIMEOUT.as_millis());
        let options = match cfg.get_options() {
            Some(o) => format!("{o} {timeout}"),
            None => timeout,
        };
        cfg.options(&options);
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(30));
        let target = describe(&cfg);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("ocrbox-ledger")
            .build()
            .map_err(|e| LedgerError::Io(format!("ledger runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            cfg,
            tls()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _in = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(OP_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| LedgerError::Db(e.to_string()))?
        };
        let pg = Postgres {
            pool,
            runtime: Some(runtime),
            handle,
            ttl,
            box_id: Uuid::new_v4(),
            target,
        };
        pg.run(async {
            let mut client = connection(&pg.pool).await?;
            migrate(&mut client).await
        })
        .map_err(|e| match e {
            LedgerError::Unavailable(why) => {
                LedgerError::Unavailable(format!("{}: {why}", pg.target))
            }
            e => e,
        })?;
        Ok(pg)
    }

    /// Runs `op` in one transaction on a pooled connection, committed when it returns `Ok`
    /// (rolled back when it returns an error).
    fn transact<T>(
        &self,
        op: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        self.run(async {
            let mut client = connection(&self.pool).await?;
            let tx = client.transaction().await.map_err(db)?;
            let out = op(&tx).await?;
            tx.commit().await.map_err(db)?;
            Ok(out)
        })
    }

    /// Runs `op` on the ledger's runtime and waits for it, at most [`OP_TIMEOUT`].
    fn run<T>(&self, op: impl Future<Output = Result<T, LedgerError>>) -> Result<T, LedgerError> {
        self.handle.block_on(async {
            tokio::time::timeout(OP_TIMEOUT, op)
                .await
                .unwrap_or_else(|_| Err(unavailable("no answer in time")))
        })
    }

    /// How long a result stays readable at least once stored: as `tasks::TaskStore` keeps it.
    fn result_floor(&self) -> f64 {
        (self.ttl / 4)
            .min(crate::tasks::MIN_RESULT_LIFETIME)
            .as_secs_f64()
    }

    /// Sets a task's outcome while it is in process and unexpired (inside `tx`); false if it
    /// already ended, expired, or was failed by the fleet.
    async fn end_task(
        &self,
        tx: &Transaction<'_>,
        task: &Uuid,
        record: &TaskRecord,
    ) -> Result<bool, LedgerError> {
        let state = if record.ok { "done" } else { "failed" };
        let n = tx
            .execute(
                "UPDATE tasks SET state = $2, body = $3,
                     expires = greatest(expires, now() + make_interval(secs => $4))
                 WHERE id = $1 AND state = 'in_process' AND expires > now()",
                &[task, &state, &record.body, &self.result_floor()],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }
}

impl Postgres {
    /// Deletes a task's row while it is still in process (a hold given up), in the background:
    /// this may run on drop, on an async thread. Tried again while the database does not
    /// answer, for up to the task's lifetime (past it, the row expires anyway).
    fn forget(&self, id: Uuid) {
        let (pool, ttl) = (self.pool.clone(), self.ttl);
        self.handle.spawn(async move {
            let started = tokio::time::Instant::now();
            let mut pause = RETRY_FIRST;
            loop {
                let done = async {
                    connection(&pool)
                        .await?
                        .execute(
                            "DELETE FROM tasks WHERE id = $1 AND state = 'in_process'",
                            &[&id],
                        )
                        .await
                        .map_err(db)
                };
                let e = match tokio::time::timeout(OP_TIMEOUT, done).await {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => e,
                    Err(_) => unavailable("no answer in time"),
                };
                if !matches!(e, LedgerError::Unavailable(_)) || started.elapsed() + pause > ttl {
                    tracing::debug!(task = %id, error = %e, "could not release a hold");
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = next_pause(pause);
            }
        });
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // May run on an async thread (the last reference held by a task): never block here.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `postgres://user@host:port/db` of `cfg`, without the password.
fn describe(cfg: &tokio_postgres::Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        cfg.get_user().unwrap_or(""),
        cfg.get_dbname().unwrap_or("")
    )
}

/// TLS by rustls: the Mozilla roots, plus the PEM certificates in `OCRBOX_LEDGER_CA` (a
/// private CA, or a self-signed server). Used when the URL's `sslmode` asks for TLS (the
/// default, `prefer`, uses it when the server offers it).
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, LedgerError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = std::env::var_os("OCRBOX_LEDGER_CA") {
        let pem = std::fs::read(&path)
            .map_err(|e| LedgerError::Io(format!("OCRBOX_LEDGER_CA {path:?}: {e}")))?;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| LedgerError::Io(format!("OCRBOX_LEDGER_CA: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| LedgerError::Io(format!("OCRBOX_LEDGER_CA: {e}")))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| LedgerError::Io(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn unavailable(why: &str) -> LedgerError {
    LedgerError::Unavailable(why.to_string())
}

/// Sorts a database error: connection trouble, a shutting-down server or a cancelled (too
/// slow) statement is [`LedgerError::Unavailable`]; anything else is a plain error.
fn db(e: tokio_postgres::Error) -> LedgerError {
    match e.as_db_error() {
        Some(d) => {
            let code = d.code();
            let transient = code.code().starts_with("08")
                || code.code().starts_with("57P")
                || *code == SqlState::QUERY_CANCELED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED;
            let text = format!("{} ({})", d.message(), code.code());
            if transient {
                LedgerError::Unavailable(text)
            } else {
                LedgerError::Db(text)
            }
        }
        // No SQL state: the connection failed or closed.
        None => LedgerError::Unavailable(e.to_string()),
    }
}

async fn connection(pool: &Pool) -> Result<Object, LedgerError> {
    pool.get()
        .await
        .map_err(|e| LedgerError::Unavailable(e.to_string()))
}

async fn migrate(client: &mut Object) -> Result<(), LedgerError> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ocrbox_schema (
             version integer PRIMARY KEY,
             applied timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db)?;
    let have: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM ocrbox_schema", &[])
        .await
        .map_err(db)?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if have > known {
        return Err(LedgerError::Db(format!(
            "the database has schema version {have}, newer than this ocrbox knows ({known}): \
             upgrade ocrbox"
        )));
    }
    for (version, step) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        tx.batch_execute(step).await.map_err(db)?;
        let version = version as i32 + 1;
        tx.execute(
            "INSERT INTO ocrbox_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(db)?;
        tracing::info!(version, "ledger schema migrated");
    }
    tx.commit().await.map_err(db)
}

async fn beat(pool: Pool, me: Uuid) -> Result<(), LedgerError> {
    connection(&pool)
        .await?
        .execute(
            "INSERT INTO boxes (id, seen) VALUES ($1, now())
             ON CONFLICT (id) DO UPDATE SET seen = now()",
            &[&me],
        )
        .await
        .map_err(db)?;
    Ok(())
}

/// Fails the tasks of boxes silent for [`BOX_DEAD_AFTER`] (a lost task has no body) and
/// deletes expired tasks and long-gone boxes. Every box runs it; each statement is idempotent.
async fn reap(pool: &Pool, floor: f64) -> Result<u64, LedgerError> {
    let client = connection(pool).await?;
    let dead = BOX_DEAD_AFTER.as_secs_f64();
    let lost = client
        .execute(
            "UPDATE tasks SET state = 'failed', body = NULL,
                 expires = greatest(expires, now() + make_interval(secs => $2))
             WHERE state = 'in_process' AND NOT EXISTS (
                 SELECT 1 FROM boxes b
                 WHERE b.id = tasks.box AND b.seen > now() - make_interval(secs => $1))",
            &[&dead, &floor],
        )
        .await
        .map_err(db)?;
    client
        .batch_execute(
            "DELETE FROM tasks WHERE expires <= now();
             DELETE FROM boxes WHERE seen < now() - interval '1 day';",
        )
        .await
        .map_err(db)?;
    Ok(lost)
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn hash_of(row: &Row, i: usize) -> Result<KeyHash, LedgerError> {
    let bytes: &[u8] = row.get(i);
    bytes
        .try_into()
        .map_err(|_| LedgerError::Db("a key hash is not 32 bytes".into()))
}

/// A key from columns `id, name, solves, created, revoked` starting at `at`.
fn info_of(row: &Row, at: usize) -> KeyInfo {
    KeyInfo {
        id: row.get(at),
        name: row.get(at + 1),
        solves: u64_of(row.get(at + 2)),
        created: u64_of(row.get(at + 3)),
        revoked: row.get(at + 4),
    }
}

const KEY_COLUMNS: &str = "hash, id, name, solves, created, revoked";

/// Finds and locks the single key named by a whole key or a prefix of its id.
async fn resolve(tx: &Transaction<'_>, selector: &str) -> Result<(KeyHash, KeyInfo), LedgerError> {
    let hash = hash_key(selector);
    let by_hash = format!("SELECT {KEY_COLUMNS} FROM keys WHERE hash = $1 FOR UPDATE");
    if let Some(row) = tx
        .query_opt(&by_hash, &[&hash.as_slice()])
        .await
        .map_err(db)?
    {
        return Ok((hash, info_of(&row, 1)));
    }
    let prefix = id_prefix(selector)?;
    let by_id =
        format!("SELECT {KEY_COLUMNS} FROM keys WHERE starts_with(id, $1) LIMIT 2 FOR UPDATE");
    let rows = tx.query(&by_id, &[&prefix]).await.map_err(db)?;
    match rows.as_slice() {
        [row] => Ok((hash_of(row, 0)?, info_of(row, 1))),
        [] => Err(LedgerError::NoSuchKey(selector.to_string())),
        _ => Err(LedgerError::Ambiguous(selector.to_string())),
    }
}

/// Inserts a new key (drawing again on the rare id clash); returns the secret and its record.
async fn insert_key(
    tx: &Transaction<'_>,
    name: &str,
    solves: u64,
) -> Result<(String, KeyInfo), LedgerError> {
    loop {
        let key = new_key()?;
        let info = KeyInfo::new(&key, name, solves);
        let n = tx
            .execute(
                "INSERT INTO keys (hash, id, name, solves, created) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
                &[
                    &hash_key(&key).as_slice(),
                    &info.id,
                    &info.name,
                    &i64_of(solves),
                    &i64_of(info.created),
                ],
            )
            .await
            .map_err(db)?;
        if n == 1 {
            return Ok((key, info));
        }
    }
}

/// True when the ledger has no key (inside `tx`).
async fn no_keys(tx: &Transaction<'_>) -> Result<bool, LedgerError> {
    let row = tx
        .query_one("SELECT NOT EXISTS (SELECT 1 FROM keys)", &[])
        .await
        .map_err(db)?;
    Ok(row.get(0))
}

/// The locked balance of `key` (0 when unknown or revoked) and whether it is revoked or gone.
async fn locked_balance(tx: &Transaction<'_>, key: &KeyHash) -> Result<(u64, bool), LedgerError> {
    let row = tx
        .query_opt(
            "SELECT solves, revoked FROM keys WHERE hash = $1 FOR UPDATE",
            &[&key.as_slice()],
        )
        .await
        .map_err(db)?;
    Ok(match row {
        Some(r) if !r.get::<_, bool>(1) => (u64_of(r.get(0)), false),
        _ => (0, true),
    })
}

impl Ledger for Postgres {
    fn describe(&self) -> String {
        self.target.clone()
    }

    fn is_empty(&self) -> Result<bool, LedgerError> {
        self.run(async {
            let row = connection(&self.pool)
                .await?
                .query_one("SELECT NOT EXISTS (SELECT 1 FROM keys)", &[])
                .await
                .map_err(db)?;
            Ok(row.get(0))
        })
    }

    fn first_key(&self, solves: u64) -> Result<Option<String>, LedgerError> {
        self.transact(async |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_FIRST_KEY])
                .await
                .map_err(db)?;
            if !no_keys(tx).await? {
                return Ok(None);
            }
            let (key, _) = insert_key(tx, "first key", solves).await?;
            Ok(Some(key))
        })
    }

    fn add_key(&self, name: &str, solves: u64) -> Result<(String, KeyInfo), LedgerError> {
        self.transact(async |tx| {
            let added = insert_key(tx, name, solves).await?;
            Ok(added)
        })
    }

    fn get(&self, hash: &KeyHash) -> Result<Option<KeyInfo>, LedgerError> {
        self.run(async {
            let query = format!("SELECT {KEY_COLUMNS} FROM keys WHERE hash = $1");
            let row = connection(&self.pool)
                .await?
                .query_opt(&query, &[&hash.as_slice()])
                .await
                .map_err(db)?;
            Ok(row.map(|r| info_of(&r, 1)))
        })
    }

    fn usage_24h(&self, hash: &KeyHash) -> Result<u64, LedgerError> {
        self.run(async {
            let query = format!(
                "SELECT coalesce(sum(count), 0)::bigint FROM usage
                 WHERE hash = $1 AND minute > {NOW_MINUTE} - {WINDOW_MINUTES}"
            );
            let row = connection(&self.pool)
                .await?
                .query_one(&query, &[&hash.as_slice()])
                .await
                .map_err(db)?;
            Ok(u64_of(row.get(0)))
        })
    }

    fn prune(&self) -> Result<(), LedgerError> {
        self.run(async {
            let query =
                format!("DELETE FROM usage WHERE minute <= {NOW_MINUTE} - {WINDOW_MINUTES}");
            connection(&self.pool)
                .await?
                .execute(&query, &[])
                .await
                .map_err(db)?;
            Ok(())
        })
    }

    fn update_key(
        &self,
        selector: &str,
        change: &dyn Fn(&mut KeyInfo) -> Result<(), LedgerError>,
    ) -> Result<KeyInfo, LedgerError> {
        self.transact(async |tx| {
            let (hash, mut info) = resolve(tx, selector).await?;
            change(&mut info)?;
            tx.execute(
                "UPDATE keys SET solves = $2, revoked = $3 WHERE hash = $1",
                &[&hash.as_slice(), &i64_of(info.solves), &info.revoked],
            )
            .await
            .map_err(db)?;
            Ok(info)
        })
    }

    fn list(&self) -> Result<Vec<KeyRow>, LedgerError> {
        self.run(async {
            let query = format!(
                "SELECT {KEY_COLUMNS}, (SELECT coalesce(sum(u.count), 0)::bigint FROM usage u
                     WHERE u.hash = k.hash AND u.minute > {NOW_MINUTE} - {WINDOW_MINUTES})
                 FROM keys k ORDER BY created, id"
            );
            let rows = connection(&self.pool)
                .await?
                .query(&query, &[])
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| KeyRow {
                    info: info_of(r, 1),
                    last_24h: u64_of(r.get(6)),
                })
                .collect())
        })
    }

    fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        self.run(async {
            let mut client = connection(&self.pool).await?;
            // One snapshot for both reads: a charge is in it whole or not at all.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(db)?;
            let mut snapshot = Snapshot::default();
            let keys = format!("SELECT {KEY_COLUMNS} FROM keys ORDER BY created, id");
            for row in tx.query(&keys, &[]).await.map_err(db)? {
                snapshot.keys.push((hash_of(&row, 0)?, info_of(&row, 1)));
            }
            let usage = format!(
                "SELECT hash, minute, count FROM usage
                 WHERE minute > {NOW_MINUTE} - {WINDOW_MINUTES} ORDER BY hash, minute"
            );
            for row in tx.query(&usage, &[]).await.map_err(db)? {
                let minute = u64_of(row.get(1));
                snapshot
                    .usage
                    .push((hash_of(&row, 0)?, minute, u64_of(row.get(2))));
            }
            tx.commit().await.map_err(db)?;
            Ok(snapshot)
        })
    }

    fn restore(&self, snapshot: &Snapshot) -> Result<BackupStats, LedgerError> {
        self.transact(async |tx| {
            // Keeps a box's `keys add` from slipping in between the check and the copy.
            tx.batch_execute("LOCK TABLE keys IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(db)?;
            if !no_keys(tx).await? {
                return Err(LedgerError::NotEmpty(self.describe()));
            }
            for (hash, k) in &snapshot.keys {
                tx.execute(
                    "INSERT INTO keys (hash, id, name, solves, created, revoked)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &hash.as_slice(),
                        &k.id,
                        &k.name,
                        &i64_of(k.solves),
                        &i64_of(k.created),
                        &k.revoked,
                    ],
                )
                .await
                .map_err(db)?;
            }
            for (hash, minute, count) in &snapshot.usage {
                tx.execute(
                    "INSERT INTO usage (hash, minute, count) VALUES ($1, $2, $3)",
                    &[&hash.as_slice(), &i64_of(*minute), &i64_of(*count)],
                )
                .await
                .map_err(db)?;
            }
            Ok(snapshot.stats())
        })
    }

    fn hold(&self, task: &Held, credits: u64) -> Result<(), LedgerError> {
        let held = self.transact(async |tx| {
            // The key's row lock orders every hold and charge of the key, on every box.
            let (solves, _) = locked_balance(tx, &task.key).await?;
            let others: i64 = tx
                .query_one(
                    "SELECT coalesce(sum(credits), 0)::bigint FROM tasks
                     WHERE owner = $1 AND state = 'in_process' AND expires > now() AND id <> $2",
                    &[&task.key.as_slice(), &task.task],
                )
                .await
                .map_err(db)?
                .get(0);
            if solves < u64_of(others) + credits {
                return Err(LedgerError::NoSolves);
            }
            let ttl = self.ttl.as_secs_f64();
            tx.execute(
                "INSERT INTO tasks (id, owner, box, credits, state, expires)
                 VALUES ($1, $2, $3, $4, 'in_process', now() + make_interval(secs => $5))
                 ON CONFLICT (id) DO UPDATE SET credits = excluded.credits,
                     expires = excluded.expires
                 WHERE tasks.state = 'in_process'",
                &[
                    &task.task,
                    &task.key.as_slice(),
                    &self.box_id,
                    &i64_of(credits),
                    &ttl,
                ],
            )
            .await
            .map_err(db)?;
            Ok(())
        });
        // The connection may have failed after the commit: a new task's row may exist though
        // the caller refuses the submit (no reservation will release it), so delete it.
        if task.credits == 0 && matches!(held, Err(LedgerError::Unavailable(_))) {
            self.forget(task.task);
        }
        held
    }

    fn charge(&self, task: &Held, record: &dyn Fn() -> TaskRecord) -> Result<u64, LedgerError> {
        let record = record();
        self.transact(async |tx| {
            let (solves, revoked) = locked_balance(tx, &task.key).await?;
            // An administrator may have debited or revoked the key while the task ran.
            if revoked {
                return Err(LedgerError::Revoked);
            }
            if solves < task.credits {
                return Err(LedgerError::NoSolves);
            }
            if !self.end_task(tx, &task.task, &record).await? {
                return Err(LedgerError::TaskGone);
            }
            let left: i64 = tx
                .query_one(
                    "UPDATE keys SET solves = solves - $2 WHERE hash = $1 RETURNING solves",
                    &[&task.key.as_slice(), &i64_of(task.credits)],
                )
                .await
                .map_err(db)?
                .get(0);
            let usage = format!(
                "INSERT INTO usage (hash, minute, count) VALUES ($1, {NOW_MINUTE}, $2)
                 ON CONFLICT (hash, minute) DO UPDATE SET count = usage.count + excluded.count"
            );
            tx.execute(&usage, &[&task.key.as_slice(), &i64_of(task.credits)])
                .await
                .map_err(db)?;
            Ok(u64_of(left))
        })
    }

    fn fail(&self, task: &Held, record: &dyn Fn() -> TaskRecord) -> Result<(), LedgerError> {
        let record = record();
        self.transact(async |tx| {
            // Nothing to do when it already ended (e.g. failed by the fleet as lost).
            self.end_task(tx, &task.task, &record).await?;
            Ok(())
        })
    }

    fn release(&self, task: &Held) {
        self.forget(task.task);
    }

    fn shares_tasks(&self) -> bool {
        true
    }

    fn task(&self, id: &Uuid) -> Result<Option<(KeyHash, Option<TaskRecord>)>, LedgerError> {
        self.run(async {
            let row = connection(&self.pool)
                .await?
                .query_opt(
                    "SELECT owner, state, body FROM tasks WHERE id = $1 AND expires > now()",
                    &[id],
                )
                .await
                .map_err(db)?;
            let Some(row) = row else { return Ok(None) };
            let state: &str = row.get(1);
            let record = match state {
                "in_process" => None,
                done => Some(TaskRecord {
                    ok: done == "done",
                    body: row.get::<_, Option<String>>(2).unwrap_or_default(),
                }),
            };
            Ok(Some((hash_of(&row, 0)?, record)))
        })
    }

    /// Joins the fleet: writes this box's first heartbeat (before it accepts a task, so no
    /// other box takes it for dead), then keeps beating and reaping in the background.
    fn join(&self) -> Result<(), LedgerError> {
        self.run(beat(self.pool.clone(), self.box_id))?;
        let (pool, me, floor) = (self.pool.clone(), self.box_id, self.result_floor());
        self.handle.spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                let round = async {
                    beat(pool.clone(), me).await?;
                    reap(&pool, floor).await
                };
                match tokio::time::timeout(OP_TIMEOUT, round).await {
                    Ok(Ok(lost)) if lost > 0 => {
                        tracing::warn!(lost, "failed the tasks of a box that stopped answering")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "ledger heartbeat"),
                    Err(_) => tracing::warn!("ledger heartbeat timed out"),
                }
            }
        });
        Ok(())
    }

    fn leave(&self) {
        let me = self.box_id;
        let left = self.run(async {
            let client = connection(&self.pool).await?;
            // Tasks this box will not finish end now rather than at the next heartbeat check.
            client
                .execute(
                    "UPDATE tasks SET state = 'failed', body = NULL
                     WHERE box = $1 AND state = 'in_process'",
                    &[&me],
                )
                .await
                .map_err(db)?;
            client
                .execute("DELETE FROM boxes WHERE id = $1", &[&me])
                .await
                .map_err(db)?;
            Ok(())
        });
        if let Err(e) = left {
            tracing::warn!(error = %e, "could not leave the fleet cleanly");
        }
    }
}
