//! The HTTP server: an accept loop, one `service_fn` per connection, timeouts, a connection cap
//! and graceful shutdown, all in [`serve`]. Endpoints live in [`routes`].

pub mod error;
pub mod health;
pub mod json;
pub mod multipart;
pub mod openapi;
pub mod page;
pub mod routes;
pub mod scrape;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

use crate::ledger::Ledger;
use crate::metrics::{self, Refusal};
use crate::tasks::TaskStore;
use crate::workers::Pool;
use error::ApiError;

/// Every response we send.
pub type Response = hyper::Response<Full<Bytes>>;

/// What request handlers share.
pub struct AppState {
    pub ledger: Arc<dyn Ledger>,
    pub tasks: Arc<TaskStore>,
    pub pool: Arc<Pool>,
    /// Largest accepted image, bytes.
    pub max_upload: u64,
    /// What one upload may cost to decode, pages included (checked before queueing).
    pub doc_limits: crate::ocr::Limits,
    /// Long-polls (`?wait=`) that may wait at once; beyond, a poll answers at once.
    pub waiters: Semaphore,
    /// Woken at shutdown, so long-polls answer instead of holding the grace period.
    pub stopping: Notify,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(
        ledger: Arc<dyn Ledger>,
        tasks: Arc<TaskStore>,
        pool: Arc<Pool>,
        max_upload: u64,
        doc_limits: crate::ocr::Limits,
    ) -> Self {
        AppState {
            ledger,
            tasks,
            pool,
            max_upload,
            doc_limits,
            waiters: Semaphore::new(MAX_WAITERS),
            stopping: Notify::new(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// True once shutdown began: new uploads are refused with 503.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Time a client has to send a request's headers (slowloris guard; needs hyper's timer), on the
/// API's listener and the metrics listener.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Long-polls waiting at once. Each holds a connection (and nothing else: no worker, no thread),
/// so this is a share of `--max-connections`' default (512) that leaves room for uploads.
const MAX_WAITERS: usize = 256;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; the accept loop waits when all are taken.
    pub max_connections: usize,
    /// Time to receive a request's headers. Without it (and a timer) hyper waits forever, and a
    /// client trickling header bytes (slowloris) holds a connection indefinitely.
    pub header_timeout: Duration,
    /// Time for a whole request, upload included.
    pub request_timeout: Duration,
    /// How long shutdown waits for open requests.
    pub shutdown_grace: Duration,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets open requests finish
/// (up to `limits.shutdown_grace`) and returns.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);

    loop {
        // Take a connection slot first: at the cap we stop accepting and let the kernel's
        // backlog hold newcomers, rather than accept and then starve them.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let builder = Arc::clone(&builder);
        let state = Arc::clone(&state);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| handle(Arc::clone(&state), peer, limits, req));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    // Finish the request in progress, then close; idle connections close now.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }

    tracing::info!("shutting down: no longer accepting connections");
    state.shutting_down.store(true, Ordering::SeqCst);
    state.stopping.notify_waiters();
    drop(listener);
    let _ = stop_tx.send(());
    // Every connection holds a slot; when all slots are back, all connections are closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time; dropping them");
    }
}

/// Runs one request under the request timeout, writes its access-log line and counts it in
/// the metrics.
async fn handle(
    state: Arc<AppState>,
    peer: SocketAddr,
    limits: Limits,
    req: Request<Incoming>,
) -> Result<Response, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: the query carries the API key, which must never reach the logs.
    let path: String = req.uri().path().chars().take(200).collect();
    let route = routes::route_label(req.uri().path());
    let resp = match tokio::time::timeout(limits.request_timeout, routes::route(state, req)).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            if let Some(why) = refusal(&e) {
                metrics::get().refused(why);
            }
            e.into_response()
        }
        Err(_) => ApiError::Timeout.into_response(),
    };
    metrics::get().request(route, resp.status().as_u16());
    tracing::info!(
        target: "ocrbox::access",
        %peer,
        %method,
        path = %path,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
    );
    Ok(resp)
}

/// The refusals operators watch (402, 503), by cause.
fn refusal(e: &ApiError) -> Option<Refusal> {
    match e {
        ApiError::NoSolves => Some(Refusal::NoSolves),
        ApiError::QueueFull { .. } => Some(Refusal::QueueFull),
        ApiError::ShuttingDown => Some(Refusal::ShuttingDown),
        ApiError::LedgerUnavailable(_) => Some(Refusal::LedgerUnavailable),
        _ => None,
    }
}
