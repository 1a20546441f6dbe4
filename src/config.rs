//! Server configuration: `ocrbox serve` flags, each also settable by an `OCRBOX_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of `ocrbox serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, env = "OCRBOX_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Database of keys, credits and usage (created if missing). The admin socket is
    /// `<db>.sock` next to it.
    #[arg(long, env = "OCRBOX_DB", default_value = "./ocrbox.redb")]
    pub db: PathBuf,
    /// Inference threads [default: number of CPU cores].
    #[arg(long, env = "OCRBOX_WORKERS")]
    pub workers: Option<usize>,
    /// Uploads that may wait for a worker; beyond this, submit answers 503.
    #[arg(long, env = "OCRBOX_QUEUE", default_value_t = 64)]
    pub queue: usize,
    /// How long a task and its result stay pollable after submission (e.g. 30s, 2m).
    #[arg(long, env = "OCRBOX_TASK_TTL", default_value = "30s", value_parser = parse_duration)]
    pub task_ttl: Duration,
    /// Largest accepted image upload (e.g. 20MiB, 500KB, 1048576).
    #[arg(long, env = "OCRBOX_MAX_UPLOAD", default_value = "20MiB", value_parser = parse_size)]
    pub max_upload: u64,
    /// Most simultaneous client connections; further ones wait to be accepted.
    #[arg(long, env = "OCRBOX_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Time a client has to send a whole request (headers and upload).
    #[arg(long, env = "OCRBOX_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Solves given to the key created on first start with an empty database.
    #[arg(long, env = "OCRBOX_FIRST_KEY_SOLVES", default_value_t = 100)]
    pub first_key_solves: u64,
}

impl ServeConfig {
    /// Worker count, resolving the default.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// Path of the admin socket for this database.
    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.db)
    }
}

/// `<db>.sock`: where a running server listens for `ocrbox keys` commands.
pub fn socket_path(db: &std::path::Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".sock");
    PathBuf::from(s)
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 30s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration must be positive, got {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `20MiB`, `500KB`, `1G` or a bare number of bytes (KB/MB/GB are powers of 1000,
/// KiB/MiB/GiB powers of 1024, K/M/G powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (examples: 20MiB, 500KB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use KiB, MiB, KB, MB)"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("invalid size {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert_eq!(parse_size("20MiB").unwrap(), 20 << 20);
        assert_eq!(parse_size("500KB").unwrap(), 500_000);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("lots").is_err());
    }
}
