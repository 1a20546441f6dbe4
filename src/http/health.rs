//! `GET /healthz`, on the API's listener and on the metrics listener: whether this server can
//! take work now, for load balancers, monitors and orchestrators. No key, no OCR, no write.

use std::time::Duration;

use hyper::StatusCode;
use serde::Serialize;

use super::{json, AppState, Response};

/// Longest wait for the database's answer; a read transaction normally takes microseconds.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// The body: `{"status":"ok","version":"…"}`, or with 503
/// `{"status":"fail","version":"…","detail":"shutting down"}`.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
}

/// 200 when the server is not shutting down, its queue is open with every worker thread alive,
/// and the database answers a read transaction within [`DB_TIMEOUT`]; 503 with the first
/// failing part otherwise. Workers are not sent a job: under load they are busy with OCR for
/// seconds, and a busy server is healthy.
pub async fn check(state: &AppState) -> Response {
    let problem = if state.is_shutting_down() {
        Some("shutting down")
    } else if !state.pool.is_running() {
        Some("workers stopped")
    } else if !database_answers(state).await {
        Some("database not answering")
    } else {
        None
    };
    let status = match problem {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    json::response(
        status,
        &Health {
            status: if problem.is_none() { "ok" } else { "fail" },
            version: env!("CARGO_PKG_VERSION"),
            detail: problem,
        },
    )
}

/// Begins a read transaction and reads the first key row, on the blocking pool (a read may
/// touch the disk).
async fn database_answers(state: &AppState) -> bool {
    let ledger = std::sync::Arc::clone(&state.ledger);
    let read = tokio::task::spawn_blocking(move || ledger.is_empty());
    match tokio::time::timeout(DB_TIMEOUT, read).await {
        Ok(Ok(Ok(_))) => true,
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "health check: database read failed");
            false
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database read did not finish");
            false
        }
        Err(_) => {
            tracing::warn!("health check: database read took over {DB_TIMEOUT:?}");
            false
        }
    }
}
