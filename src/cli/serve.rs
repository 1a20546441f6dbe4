//! `ocrbox serve`: the HTTP API, the inference workers and the admin socket in one process.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ocrbox::ledger::{Ledger, Local, Postgres};
use ocrbox::tasks::TaskStore;
use ocrbox::workers::Pool;
use ocrbox::{admin, http, ocr};

use super::DEFAULT_DB;

/// `--task-ttl`'s default, for commands that open a shared ledger without serving.
pub const DEFAULT_TASK_TTL: Duration = Duration::from_secs(30);

/// How long shutdown waits for open requests to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `ocrbox serve`, each also settable by an `OCRBOX_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, env = "OCRBOX_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Database of keys, credits and usage (created if missing). The admin socket is
    /// `<db>.sock` next to it.
    #[arg(long, env = "OCRBOX_DB", default_value = DEFAULT_DB)]
    pub db: PathBuf,
    /// Keep keys, credits and tasks in this PostgreSQL database instead of `--db`, shared by
    /// every box that names it (README, "Fleet"). Example: postgres://ocrbox@db.lan/ocrbox
    #[arg(long, env = "OCRBOX_LEDGER", value_name = "postgres://…", value_parser = super::parse_postgres_url)]
    pub ledger: Option<String>,
    /// Text detector: PP-OCRv6 `small` (default) or `tiny` (see README, "OCR engine").
    #[arg(
        long,
        value_name = "tiny|small",
        env = "OCRBOX_DET",
        default_value = "small"
    )]
    pub det: ocr::Detector,
    /// Inference threads [default: number of CPU cores].
    #[arg(long, env = "OCRBOX_WORKERS")]
    pub workers: Option<usize>,
    /// Uploads that may wait for a worker; beyond this, submit answers 503.
    #[arg(long, env = "OCRBOX_QUEUE", default_value_t = 64)]
    pub queue: usize,
    /// How long a task and its result stay pollable after submission (e.g. 30s, 2m).
    #[arg(long, env = "OCRBOX_TASK_TTL", default_value = "30s", value_parser = super::parse_duration)]
    pub task_ttl: Duration,
    /// Largest accepted image upload (e.g. 20MiB, 500KB, 1048576).
    #[arg(long, env = "OCRBOX_MAX_UPLOAD", default_value = "20MiB", value_parser = super::parse_size)]
    pub max_upload: u64,
    /// Most pages read from one PDF or multi-page TIFF upload; a longer document answers 413. Each page
    /// costs one solve.
    #[arg(long, env = "OCRBOX_MAX_PAGES", default_value_t = 50)]
    pub max_pages: usize,
    /// Most simultaneous client connections; further ones wait to be accepted.
    #[arg(long, env = "OCRBOX_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Time a client has to send a whole request (headers and upload).
    #[arg(long, env = "OCRBOX_REQUEST_TIMEOUT", default_value = "60s", value_parser = super::parse_duration)]
    pub request_timeout: Duration,
    /// Solves given to the key created on first start with an empty database.
    #[arg(long, env = "OCRBOX_FIRST_KEY_SOLVES", default_value_t = 100)]
    pub first_key_solves: u64,
    /// Also serve Prometheus metrics (GET /metrics) and GET /healthz, without a key, on this
    /// address, e.g. 127.0.0.1:9464. Off unless given; keep it on loopback or a private
    /// network. Port 0 picks a free port (printed at start).
    #[arg(long, env = "OCRBOX_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

impl Args {
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
        admin::socket_path(&self.db)
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(cfg: Args) -> ExitCode {
    init_logging();
    match serve(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocrbox serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OCRBOX_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal; journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn serve(cfg: Args) -> Result<(), Box<dyn std::error::Error>> {
    // Open the ledger first: it fails fast when another server holds the file, or when the
    // shared database does not answer.
    let (ledger, local): (Arc<dyn Ledger>, Option<Arc<Local>>) = match &cfg.ledger {
        Some(url) => (Arc::new(Postgres::connect(url, cfg.task_ttl)?), None),
        None => {
            let local = Arc::new(Local::open(&cfg.db)?);
            (Arc::clone(&local) as Arc<dyn Ledger>, Some(local))
        }
    };
    ledger.join()?;
    let workers = cfg.workers();
    // Idle workers lend their cores, so the worker count stays the CPU budget the admin set:
    // several boxes on one machine (the fleet test's 3 × 1 worker on 2 cores) do not overcommit.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spare = Arc::new(ocr::Spare::new(workers.min(cores)));
    let engine = Arc::new(ocr::Engine::new(cfg.det)?.with_spare(Arc::clone(&spare)));
    crate::alloc::collect();
    let warm = Arc::clone(&engine);
    let warming = std::thread::Builder::new()
        .name("ocrbox-warm".into())
        .spawn(move || {
            warm.warm_up();
            // What the parsed graphs took is freed on this thread: return it before it ends.
            crate::alloc::collect();
        });
    if let Err(e) = warming {
        // Only the first image's speed depends on it.
        tracing::warn!("no warm-up thread: {e}");
    }
    let tasks = Arc::new(TaskStore::new(cfg.task_ttl));
    let doc_limits = ocr::Limits {
        max_pages: cfg.max_pages.max(1),
        ..ocr::Limits::default()
    };
    let pool = Arc::new(Pool::start(
        workers,
        cfg.queue,
        engine,
        Arc::clone(&tasks),
        doc_limits,
        spare,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ocrbox-io")
        .build()?;
    let socket = cfg.socket_path();
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let metrics_listener = bind_metrics(cfg.metrics_listen).await?;
        let solves = cfg.first_key_solves;
        let first = Arc::clone(&ledger);
        if let Some(key) = tokio::task::spawn_blocking(move || first.first_key(solves)).await?? {
            print_first_key(&key, solves, addr);
        }
        let shutdown = shutdown_signal()?;
        // With a shared ledger, `ocrbox keys --ledger` talks to the database itself.
        if let Some(local) = &local {
            let admin_listener = admin::bind(&socket)
                .map_err(|e| format!("cannot create admin socket {}: {e}", socket.display()))?;
            tokio::spawn(admin::serve(admin_listener, Arc::clone(local)));
        }
        tokio::spawn(reaper(Arc::clone(&tasks), Arc::clone(&ledger)));
        tracing::info!(
            %addr,
            ledger = %ledger.describe(),
            workers,
            queue = cfg.queue,
            ttl_s = cfg.task_ttl.as_secs_f64(),
            max_upload = cfg.max_upload,
            "ocrbox serving"
        );
        if let Some(l) = &metrics_listener {
            tracing::info!(addr = %l.local_addr()?, "serving metrics");
            // Before "listening on": tests and scripts read both lines to learn the ports.
            println!("metrics on {}", l.local_addr()?);
        }
        // Tests and scripts read this line to learn the port when listening on port 0.
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
        let state = Arc::new(http::AppState::new(
            Arc::clone(&ledger),
            Arc::clone(&tasks),
            Arc::clone(&pool),
            cfg.max_upload,
            doc_limits,
        ));
        let limits = http::Limits {
            max_connections: cfg.max_connections.max(1),
            header_timeout: http::HEADER_TIMEOUT,
            request_timeout: cfg.request_timeout,
            shutdown_grace: SHUTDOWN_GRACE,
        };
        if let Some(l) = metrics_listener {
            tokio::spawn(http::scrape::serve(l, Arc::clone(&state)));
        }
        http::serve(listener, state, limits, shutdown).await;
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    // Results nobody can collect any more are not charged: forget the tasks, then let running
    // inferences end (they find their task gone) and drop queued jobs.
    tasks.clear();
    pool.shutdown();
    ledger.leave();
    runtime.shutdown_timeout(Duration::from_secs(2));
    if local.is_some() {
        let _ = std::fs::remove_file(&socket);
    }
    // The last reference closes the database cleanly.
    drop(local);
    drop(ledger);
    tracing::info!("stopped");
    result
}

/// The metrics listener, when `--metrics-listen` asks for one.
async fn bind_metrics(at: Option<SocketAddr>) -> Result<Option<tokio::net::TcpListener>, String> {
    let Some(at) = at else { return Ok(None) };
    tokio::net::TcpListener::bind(at)
        .await
        .map(Some)
        .map_err(|e| format!("cannot listen for metrics on {at}: {e}"))
}

/// Expires tasks and frees the big blocks not reused in the last second, every second, and
/// prunes old usage buckets every minute.
async fn reaper(tasks: Arc<TaskStore>, ledger: Arc<dyn Ledger>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let reaped = tasks.reap();
        // Up to the big-block bound given back (104 MiB: ~27k pages): not on the runtime's threads.
        tokio::task::spawn_blocking(crate::alloc::trim);
        if reaped > 0 {
            tracing::debug!(reaped, "expired tasks freed");
        }
        if n.is_multiple_of(60) {
            let ledger = Arc::clone(&ledger);
            let pruned = tokio::task::spawn_blocking(move || ledger.prune()).await;
            if let Ok(Err(e)) = pruned {
                tracing::warn!(error = %e, "could not prune usage");
            }
        }
        n += 1;
    }
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C). The handlers are installed here,
/// eagerly: a lazily created handler would let an early SIGTERM kill the process uncleanly.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

fn print_first_key(key: &str, solves: u64, addr: SocketAddr) {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), addr.port())
    } else {
        addr
    };
    println!(
        "Empty database: created a first API key with {solves} solves.\n\
         It is shown only this once; keep it somewhere safe:\n\
         \n    {key}\n\n\
         Try it:\n\
         \n    curl -s \"http://{host}/api/balance?api={key}\"\n\
         \n    curl -s -F image=@page.png \"http://{host}/api/ocr/solve?api={key}\"\n\
         \n    curl -s \"http://{host}/api/ocr/result/TASK_ID?api={key}\"\n\
         \nMore keys: ocrbox keys add --solves 100 --name NAME\n"
    );
}
