//! Key administration, both through a running server and directly on the database file.
//!
//! redb locks its file for one process, so while `ocrbox serve` runs, `ocrbox keys` cannot open
//! the database. Instead the server listens on a unix socket next to it (`<db>.sock`, mode 0600,
//! so only the database's owner can use it; never on the network) and runs the same
//! [`execute`] on the client's behalf. Protocol: one JSON [`Request`] line in, one JSON
//! [`Reply`] line out, per connection (a backup's reply line is followed by the database's
//! bytes).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::ledger::{BackupStats, CreditChange, KeyInfo, KeyRow, Ledger, Local};

/// An administration command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Add {
        name: String,
        solves: u64,
    },
    List,
    Credit {
        key: String,
        change: CreditChange,
    },
    Revoke {
        key: String,
    },
    /// A consistent copy of the database: the reply line is followed by its bytes.
    Backup,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
pub enum Reply {
    /// A new key: the secret (shown once) and its record.
    Added {
        key: String,
        info: KeyInfo,
    },
    Keys {
        keys: Vec<KeyRow>,
    },
    Key {
        info: KeyInfo,
    },
    /// What a backup copied; its `bytes` follow the reply line on the socket.
    Backup {
        stats: BackupStats,
        bytes: u64,
    },
    Error {
        message: String,
    },
}

/// Runs `req` against `ledger`.
pub fn execute(ledger: &dyn Ledger, req: Request) -> Reply {
    let result = match req {
        Request::Add { name, solves } => ledger
            .add_key(&name, solves)
            .map(|(key, info)| Reply::Added { key, info }),
        Request::List => ledger.list().map(|keys| Reply::Keys { keys }),
        Request::Credit { key, change } => {
            ledger.credit(&key, change).map(|info| Reply::Key { info })
        }
        Request::Revoke { key } => ledger.revoke(&key).map(|info| Reply::Key { info }),
        // Over the socket only (see `serve`); on the file, `Local::backup` writes it directly.
        Request::Backup => Ok(Reply::Error {
            message: "backup is answered by the server's socket only".into(),
        }),
    };
    result.unwrap_or_else(|e| Reply::Error {
        message: e.to_string(),
    })
}

/// Binds the admin socket at `path`, owner-only. A leftover socket from a crashed server is
/// replaced; by the time this runs we hold the database lock, so no live server owns it.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Bind inside a fresh owner-only directory, restrict the socket, then move it into place:
    // binding at `path` directly would leave it open to others (per the umask) until the chmod.
    // (Short names: socket paths are limited to 107 bytes.)
    let random = uuid::Uuid::new_v4().simple().to_string();
    let parent = path.parent().unwrap_or(Path::new("."));
    let staging = parent.join(format!(".o{}", &random[..6]));
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let staged = staging.join("s");
    let bound = UnixListener::bind(&staged).and_then(|listener| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&staging);
    bound
}

/// Answers admin requests on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, ledger: Arc<Local>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ledger = Arc::clone(&ledger);
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            // Cap one request line; admin requests are tiny.
            let mut reader = tokio::io::BufReader::new(read.take(64 * 1024));
            let read =
                tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
            if !matches!(read, Ok(Ok(_))) {
                return;
            }
            let (reply, payload) = answer(ledger, &line).await;
            let mut out = serde_json::to_vec(&reply).unwrap_or_default();
            out.push(b'\n');
            out.extend_from_slice(&payload);
            let _ = write.write_all(&out).await;
        });
    }
}

/// The reply to one request line, and the bytes that follow it (a backup's database).
async fn answer(ledger: Arc<Local>, line: &str) -> (Reply, Vec<u8>) {
    let req = match serde_json::from_str::<Request>(line) {
        Ok(req) => req,
        Err(e) => {
            let message = format!("bad request: {e}");
            return (Reply::Error { message }, Vec::new());
        }
    };
    tracing::info!(target: "ocrbox::admin", op = op_name(&req), "admin request");
    let done = tokio::task::spawn_blocking(move || match req {
        Request::Backup => ledger.backup_bytes().map(|(bytes, stats)| {
            let reply = Reply::Backup {
                stats,
                bytes: bytes.len() as u64,
            };
            (reply, bytes)
        }),
        req => Ok((execute(&*ledger, req), Vec::new())),
    })
    .await;
    match done {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => (
            Reply::Error {
                message: e.to_string(),
            },
            Vec::new(),
        ),
        Err(e) => (
            Reply::Error {
                message: e.to_string(),
            },
            Vec::new(),
        ),
    }
}

fn op_name(req: &Request) -> &'static str {
    match req {
        Request::Add { .. } => "add",
        Request::List => "list",
        Request::Credit { .. } => "credit",
        Request::Revoke { .. } => "revoke",
        Request::Backup => "backup",
    }
}

/// Sends `req` to the server listening on `socket` and reads its reply line; the reader is
/// left at the bytes after it. `Ok(None)` when no server is listening there.
fn exchange(
    socket: &Path,
    req: &Request,
    timeout: Duration,
) -> std::io::Result<Option<(Reply, BufReader<UnixStream>)>> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    reader.read_line(&mut reply)?;
    let reply = serde_json::from_str(&reply)
        .map_err(|e| std::io::Error::other(format!("bad reply from server: {e}")))?;
    Ok(Some((reply, reader)))
}

/// Sends `req` to the server listening on `socket`. `Ok(None)` when no server is listening there.
pub fn call(socket: &Path, req: &Request) -> std::io::Result<Option<Reply>> {
    Ok(exchange(socket, req, Duration::from_secs(30))?.map(|(reply, _)| reply))
}

/// Asks the server at `socket` for a backup and writes it to `out` (via `out.tmp`, synced,
/// renamed). `Ok(None)` when no server listens there.
pub fn backup(socket: &Path, out: &Path) -> std::io::Result<Option<BackupStats>> {
    let Some((reply, mut reader)) = exchange(socket, &Request::Backup, Duration::from_secs(120))?
    else {
        return Ok(None);
    };
    let (stats, len) = match reply {
        Reply::Backup { stats, bytes } => (stats, bytes),
        Reply::Error { message } => return Err(std::io::Error::other(message)),
        other => return Err(std::io::Error::other(format!("unexpected reply {other:?}"))),
    };
    let tmp = out.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    let copied = std::io::copy(&mut std::io::Read::take(&mut reader, len), &mut file)?;
    if copied != len {
        let _ = std::fs::remove_file(&tmp);
        return Err(std::io::Error::other(format!(
            "server sent {copied} of {len} bytes"
        )));
    }
    file.sync_all()?;
    std::fs::rename(&tmp, out)?;
    Ok(Some(stats))
}

/// `<db>.sock`: where a running server listens for `ocrbox keys` commands.
pub fn socket_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".sock");
    std::path::PathBuf::from(s)
}
