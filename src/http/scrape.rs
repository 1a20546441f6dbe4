//! The metrics listener (`--metrics-listen`, off by default): `GET /metrics` for Prometheus and
//! `GET /healthz`, no key. It is meant for loopback or a private network, and kept apart from
//! the API's listener: its own few connections (a scraper never takes a client's slot), HTTP/1
//! only, and it keeps answering while the API drains at shutdown, so `/healthz` there reports
//! the 503 a monitor should see.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::error::ApiError;
use super::{health, AppState, Response};
use crate::metrics::{self, Format, Sampled};

/// Connections served at once; beyond, a connection is closed at once (a scraper retries on its
/// next interval). Prometheus keeps one open per target.
const MAX_CONNECTIONS: usize = 16;

/// Serves `listener` until the runtime stops (after the API's listener has drained).
pub async fn serve(listener: TcpListener, state: Arc<AppState>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "metrics listener: connection cap reached");
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| answer(Arc::clone(&state), req));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(super::HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
}

async fn answer(state: Arc<AppState>, req: Request<Incoming>) -> Result<Response, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => scrape(&state, &req).await,
        (&Method::GET, "/healthz") => health::check(&state).await,
        (_, "/metrics" | "/healthz") => ApiError::MethodNotAllowed { allow: "GET" }.into_response(),
        _ => ApiError::NoRoute.into_response(),
    })
}

/// The exposition: OpenMetrics when the `Accept` header asks for it (Prometheus does), else the
/// Prometheus text format.
async fn scrape(state: &AppState, req: &Request<Incoming>) -> Response {
    let format = match req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
        _ => Format::Prometheus,
    };
    let pool = Arc::clone(&state.pool);
    // Off the runtime: it reads /proc and takes the plan caches' locks.
    let text = tokio::task::spawn_blocking(move || {
        let (workers, _) = pool.workers_alive();
        let sampled = Sampled {
            queue_depth: pool.queued(),
            queue_capacity: pool.capacity(),
            workers,
            plan_cache_bytes: pool.engine().cached_plan_bytes(),
            done_on_loan: pool.engine().done_on_loan(),
        };
        metrics::get().encode(&sampled, format)
    })
    .await;
    match text {
        Ok(text) => {
            let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            resp
        }
        Err(e) => ApiError::Internal(format!("metrics scrape: {e}")).into_response(),
    }
}
