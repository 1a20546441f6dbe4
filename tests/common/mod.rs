//! Helpers for the HTTP tests: a temporary directory, the real `ocrbox` binary serving on a free
//! port, and a blocking client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ocrbox");

/// The fixture line image and words its text must contain.
pub const LINE_PNG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/line_001.png");
pub const LINE_WORDS: &str = "memory leak";

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("ocrbox-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn db(&self) -> PathBuf {
        self.0.join("ocrbox.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `ocrbox serve`.
pub struct Server {
    child: Child,
    pub base: String,
    /// The key printed on first start (empty database only).
    pub first_key: Option<String>,
    /// `http://ADDR` of the metrics listener (`--metrics-listen`), if it runs.
    pub metrics: Option<String>,
}

impl Server {
    /// Starts `ocrbox serve` on a free loopback port with `db` and extra flags.
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(db, extra, &[])
    }

    /// [`Server::start`] with more environment variables.
    pub fn start_with_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let log = std::fs::File::create(db.with_extension("log")).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env_remove("OCRBOX_LISTEN")
            .envs(env.iter().copied())
            .env("OCRBOX_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start ocrbox serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut first_key = None;
        let mut metrics = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(db.with_extension("log")).unwrap_or_default();
                panic!("server did not start; log:\n{log}")
            };
            let t = line.trim();
            if t.len() == 40 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                first_key = Some(t.to_string());
            }
            if let Some(addr) = t.strip_prefix("metrics on ") {
                metrics = Some(format!("http://{addr}"));
            }
            if let Some(addr) = t.strip_prefix("listening on ") {
                return Server {
                    child,
                    base: format!("http://{addr}"),
                    first_key,
                    metrics,
                };
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ocrbox keys --db DB ARGS...`; returns stdout, panicking on failure.
pub fn keys(db: &Path, args: &[&str]) -> String {
    let out = keys_raw(db, args);
    assert!(
        out.status.success(),
        "ocrbox keys {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `ocrbox keys --db DB ARGS...` and returns its output whatever the status.
pub fn keys_raw(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("keys")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// Creates a key with `solves` credits (directly or through a running server).
pub fn add_key(db: &Path, solves: u64) -> String {
    keys(
        db,
        &["add", "--solves", &solves.to_string(), "--name", "test"],
    )
    .trim()
    .to_string()
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Status and JSON body of a response, checking the JSON content type.
pub fn json(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(ct.as_deref(), Some("application/json"), "status {status}");
    (status, resp.json().unwrap())
}

pub fn get(c: &reqwest::blocking::Client, url: &str) -> (u16, Value) {
    json(c.get(url).send().unwrap())
}

/// Submits `bytes` as the `image` field.
pub fn submit(
    c: &reqwest::blocking::Client,
    srv: &Server,
    key: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    submit_with(c, srv, key, "", bytes)
}

/// Submits `bytes` as the `image` field with more query parameters (`a=1&b=2`).
pub fn submit_with(
    c: &reqwest::blocking::Client,
    srv: &Server,
    key: &str,
    query: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let part = reqwest::blocking::multipart::Part::bytes(bytes).file_name("upload.png");
    let form = reqwest::blocking::multipart::Form::new().part("image", part);
    let extra = if query.is_empty() { "" } else { "&" };
    json(
        c.post(srv.url(&format!("/api/ocr/solve?api={key}{extra}{query}")))
            .multipart(form)
            .send()
            .unwrap(),
    )
}

/// The bytes of `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn line_png() -> Vec<u8> {
    std::fs::read(LINE_PNG).unwrap()
}

/// Polls a task every 200 ms until it is no longer in process.
pub fn wait_result(c: &reqwest::blocking::Client, srv: &Server, key: &str, task: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(c, &srv.url(&format!("/api/ocr/result/{task}?api={key}")));
        assert_eq!(status, 200, "{body}");
        if body["result"] != "in_process" {
            return body;
        }
        assert!(body["time"].is_null());
        assert!(Instant::now() < deadline, "task {task} never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(solves, 24h)` of a key.
pub fn balance(c: &reqwest::blocking::Client, srv: &Server, key: &str) -> (u64, u64) {
    let (status, body) = get(c, &srv.url(&format!("/api/balance?api={key}")));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    (
        body["solves"].as_u64().unwrap(),
        body["24h"].as_u64().unwrap(),
    )
}

/// A throwaway PostgreSQL server from the machine's own binaries (Debian's `postgresql`:
/// /usr/lib/postgresql/N/bin), on a free loopback port, trust authentication, in a temporary
/// directory; stopped and removed on drop. As root it runs as the `postgres` user the package
/// creates (initdb refuses root).
pub struct Postgres {
    bin: PathBuf,
    dir: TempDir,
    pub port: u16,
}

impl Postgres {
    /// Starts the server; panics with what to install if PostgreSQL is missing.
    pub fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(Result::ok)
                    .map(|v| v.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            })
            .expect("PostgreSQL server binaries not found: apt-get install postgresql");
        let dir = TempDir::new();
        if is_root() {
            assert!(Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir.0)
                .status()
                .unwrap()
                .success());
        }
        let server = Postgres {
            bin,
            dir,
            port: free_port(),
        };
        let ok = server
            .tool("initdb")
            .args(["-A", "trust", "-U", "ocrbox", "-E", "UTF8", "-D"])
            .arg(server.dir.0.join("data"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb failed");
        server.ctl(&["start", "-w"]);
        let ok = server
            .tool("createdb")
            .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
            .args(["-U", "ocrbox", "ocrbox"])
            .status()
            .unwrap();
        assert!(ok.success(), "createdb failed");
        server
    }

    /// One of PostgreSQL's programs, run as the `postgres` user when we are root.
    fn tool(&self, name: &str) -> Command {
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        };
        c.stdout(Stdio::null());
        c
    }

    /// The connection URL of the test database.
    pub fn url(&self) -> String {
        format!("postgres://ocrbox@127.0.0.1:{}/ocrbox", self.port)
    }

    /// Runs `pg_ctl ARGS` on this server (`start`, `stop`, `restart`).
    pub fn ctl(&self, args: &[&str]) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.0.display()
        );
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let ok = c
            .args(args)
            .args(["-m", "fast", "-D"])
            .arg(self.dir.0.join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.0.join("server.log"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "pg_ctl {args:?} failed");
    }

    /// Turns TLS on with this certificate and key (restarts the server).
    pub fn enable_tls(&self, cert: &Path, key: &Path) {
        if is_root() {
            for f in [cert, key] {
                assert!(Command::new("chown")
                    .arg("postgres")
                    .arg(f)
                    .status()
                    .unwrap()
                    .success());
            }
        }
        let conf = format!(
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            cert.display(),
            key.display()
        );
        let path = self.dir.0.join("data/postgresql.auto.conf");
        let mut all = std::fs::read_to_string(&path).unwrap_or_default();
        all.push_str(&conf);
        std::fs::write(&path, all).unwrap();
        self.ctl(&["restart", "-w"]);
    }

    /// Runs one SQL statement with psql; returns its unaligned output.
    pub fn sql(&self, query: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "ocrbox", "-d", "ocrbox", "-XAtq", "-c", query])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.0.join("data"))
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether the tests run as root (asked of `id -u`: no libc in the test crate).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `ocrbox ARGS...`; returns stdout, panicking on failure.
pub fn cli(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ocrbox {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
