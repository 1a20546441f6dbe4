//! The three endpoints of the API spec. Routing is a `match` on method and path.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use uuid::Uuid;

use super::error::{failure_detail, ApiError};
use super::{json, multipart, AppState, Response};
use crate::ledger::{unix_now, KeyHash, KeyInfo, Ledger, LedgerError, Reservation};
use crate::tasks::TaskState;
use crate::workers::{Job, SubmitError};

/// Dispatches one request.
pub async fn route(state: Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    if req.method() == Method::POST && req.uri().path() == "/api/ocr/solve" {
        return solve(&state, req).await;
    }
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let api = api_param(&req);
    // Nothing else reads a body; drain any (bounded) so the answer is not lost to a reset.
    multipart::discard(req, DISCARD_CAP).await;
    match (method, path.as_str()) {
        (Method::GET, "/api/balance") => balance(&state, api).await,
        (_, "/api/balance") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (_, "/api/ocr/solve") => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (Method::GET, p) if p.starts_with(RESULT) => result(&state, api, &p[RESULT.len()..]).await,
        (_, p) if p.starts_with(RESULT) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        _ => Err(ApiError::NoRoute),
    }
}

const RESULT: &str = "/api/ocr/result/";

/// What a 503 (queue full) suggests: about one image's processing time.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Most body bytes read from a request that should not have one.
const DISCARD_CAP: u64 = 1 << 20;

/// The `api` query parameter, percent-decoded.
fn api_param(req: &Request<Incoming>) -> Option<String> {
    query_param(req.uri().query(), "api")
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Runs a ledger call on the blocking pool: every handler reaches the ledger through here.
/// A redb read is quick, but [`Ledger::reserve`] waits for a credit being charged, and a
/// charge holds its lock across a commit (an fsync: seconds on a worn SD card). On a runtime
/// thread that wait would stall every connection served by that thread.
async fn ledger_call<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Arc<Ledger>) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, ApiError> {
    let ledger = Arc::clone(&state.ledger);
    tokio::task::spawn_blocking(move || f(&ledger))
        .await
        .map_err(|e| ApiError::Internal(format!("ledger call: {e}")))?
        .map_err(ApiError::from)
}

/// The caller's key, which must exist and not be revoked.
async fn authenticate(
    state: &AppState,
    api: Option<String>,
) -> Result<(KeyHash, KeyInfo), ApiError> {
    authenticate_optional(state, api)
        .await?
        .ok_or(ApiError::InvalidKey)
}

/// Like [`authenticate`] where a key may be left out (`None`), but a key given must be valid.
async fn authenticate_optional(
    state: &AppState,
    api: Option<String>,
) -> Result<Option<(KeyHash, KeyInfo)>, ApiError> {
    let Some(key) = api else { return Ok(None) };
    match ledger_call(state, move |l| l.authenticate(&key)).await? {
        Some(found) => Ok(Some(found)),
        None => Err(ApiError::InvalidKey),
    }
}

/// Remaining solves of `hash` (0 for a key deleted meanwhile).
async fn solves_of(state: &AppState, hash: KeyHash) -> Result<u64, ApiError> {
    Ok(ledger_call(state, move |l| l.get(&hash))
        .await?
        .map_or(0, |i| i.solves))
}

async fn balance(state: &AppState, api: Option<String>) -> Result<Response, ApiError> {
    let (hash, info) = authenticate(state, api).await?;
    let last_24h = ledger_call(state, move |l| l.usage_24h(&hash, unix_now())).await?;
    Ok(json::response(
        StatusCode::OK,
        &json::Balance {
            status: "ok",
            solves: info.solves,
            last_24h,
        },
    ))
}

/// Key, credit and queue room, checked before the upload is read: a refused client costs no
/// bandwidth.
async fn admit(state: &AppState, api: Option<String>) -> Result<(Reservation, KeyHash), ApiError> {
    let (hash, _) = authenticate(state, api).await?;
    let reservation = ledger_call(state, move |l| l.reserve(hash)).await?;
    if state.pool.is_full() {
        return Err(ApiError::QueueFull {
            retry_after: RETRY_AFTER,
        });
    }
    Ok((reservation, hash))
}

async fn solve(state: &AppState, req: Request<Incoming>) -> Result<Response, ApiError> {
    let (reservation, hash) = match admit(state, api_param(&req)).await {
        Ok(ok) => ok,
        Err(e) => {
            // Drain a modest upload so the client reads our 401/402/503 instead of a reset.
            multipart::discard(req, state.max_upload).await;
            return Err(e);
        }
    };
    let image = multipart::read_image(req, state.max_upload).await?;
    // Sniff the bytes (never the file name) so non-images are refused now, not after queueing.
    crate::ocr::decode::sniff(&image)?;
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    let (id, deadline) = state.tasks.create(hash);
    let job = Job {
        id,
        image,
        deadline,
        reservation,
    };
    match state.pool.submit(job) {
        Ok(()) => {}
        Err(SubmitError::Full(_)) => {
            state.tasks.remove(&id);
            return Err(ApiError::QueueFull {
                retry_after: RETRY_AFTER,
            });
        }
        Err(SubmitError::Closed(_)) => {
            state.tasks.remove(&id);
            return Err(ApiError::ShuttingDown);
        }
    }
    Ok(json::response(
        StatusCode::OK,
        &json::Submitted {
            status: "ok",
            result: "in_process",
            task_id: id.to_string(),
            // Read now: another of the key's tasks may have been charged during the upload.
            solves: solves_of(state, hash).await?,
        },
    ))
}

async fn result(state: &AppState, api: Option<String>, raw_id: &str) -> Result<Response, ApiError> {
    // A missing key is fine: the unguessable task id is itself the capability to read the result.
    let caller = authenticate_optional(state, api)
        .await?
        .map(|(hash, _)| hash);
    let id = Uuid::parse_str(raw_id).map_err(|_| ApiError::TaskNotFound)?;
    let task = state.tasks.get(&id).ok_or(ApiError::TaskNotFound)?;
    if caller.is_some_and(|c| c != task.owner) {
        // Same answer as an unknown id: do not confirm that someone else's task exists.
        return Err(ApiError::TaskNotFound);
    }
    let solves = solves_of(state, task.owner).await?;
    let (status, result, time) = match task.state {
        TaskState::InProcess | TaskState::Finishing => ("ok", "in_process".to_string(), None),
        TaskState::Done { text, seconds } => ("ok", text, Some(seconds)),
        TaskState::Failed { reason, seconds } => ("fail", failure_detail(&reason), Some(seconds)),
    };
    Ok(json::response(
        StatusCode::OK,
        &json::TaskResult {
            status,
            result,
            task_id: id.to_string(),
            time,
            solves,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            query_param(Some("x=1&api=ab%2Fc+d"), "api").unwrap(),
            "ab/c d"
        );
        assert_eq!(query_param(Some("api=100%"), "api").unwrap(), "100%");
        assert_eq!(query_param(Some("api"), "api").unwrap(), "");
        assert_eq!(query_param(Some("apikey=1"), "api"), None);
        assert_eq!(query_param(None, "api"), None);
    }
}
