//! The three endpoints of the API spec. Routing is a `match` on method and path.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use uuid::Uuid;

use super::error::ApiError;
use super::{json, multipart, AppState, Response};
use crate::ledger::{unix_now, KeyHash, KeyInfo};
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
        (Method::GET, "/api/balance") => balance(&state, api),
        (_, "/api/balance") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (_, "/api/ocr/solve") => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (Method::GET, p) if p.starts_with(RESULT) => result(&state, api, &p[RESULT.len()..]),
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
    let query = req.uri().query()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == "api").then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The caller's key, which must exist and not be revoked.
fn authenticate(state: &AppState, api: Option<String>) -> Result<(KeyHash, KeyInfo), ApiError> {
    let key = api.ok_or(ApiError::InvalidKey)?;
    state.ledger.authenticate(&key)?.ok_or(ApiError::InvalidKey)
}

fn balance(state: &AppState, api: Option<String>) -> Result<Response, ApiError> {
    let (hash, info) = authenticate(state, api)?;
    let last_24h = state.ledger.usage_24h(&hash, unix_now())?;
    Ok(json::response(
        StatusCode::OK,
        &json::Balance {
            status: "ok",
            solves: info.solves,
            last_24h,
        },
    ))
}

async fn solve(state: &AppState, req: Request<Incoming>) -> Result<Response, ApiError> {
    // Key and credit are checked before the upload is read: a refused client costs no bandwidth.
    let checked = authenticate(state, api_param(&req))
        .and_then(|(hash, info)| Ok((state.ledger.reserve(hash)?, hash, info)));
    // A full queue is refused before the upload is read, too.
    let checked = checked.and_then(|ok| {
        if state.pool.is_full() {
            Err(ApiError::QueueFull {
                retry_after: RETRY_AFTER,
            })
        } else {
            Ok(ok)
        }
    });
    let (reservation, hash, _) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            // Drain a modest upload so the client reads our 401/402 instead of a reset.
            multipart::discard(req, state.max_upload).await;
            return Err(e);
        }
    };
    let image = multipart::read_image(req, state.max_upload).await?;
    // Sniff the bytes (never the file name) so non-images are refused now, not after queueing.
    crate::ocr::decode::sniff(&image).map_err(|e| ApiError::BadRequest(e.to_string()))?;
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
            solves: state.ledger.get(&hash)?.map_or(0, |i| i.solves),
        },
    ))
}

fn result(state: &AppState, api: Option<String>, raw_id: &str) -> Result<Response, ApiError> {
    // A given key must be valid (401 otherwise); a missing key is fine, since the unguessable
    // task id is itself the capability to read the result.
    let caller = match api {
        Some(key) => Some(
            state
                .ledger
                .authenticate(&key)?
                .ok_or(ApiError::InvalidKey)?
                .0,
        ),
        None => None,
    };
    let id = Uuid::parse_str(raw_id).map_err(|_| ApiError::TaskNotFound)?;
    let task = state.tasks.get(&id).ok_or(ApiError::TaskNotFound)?;
    if caller.is_some_and(|c| c != task.owner) {
        // Same answer as an unknown id: do not confirm that someone else's task exists.
        return Err(ApiError::TaskNotFound);
    }
    let solves = state.ledger.get(&task.owner)?.map_or(0, |i| i.solves);
    let (status, result, time) = match task.state {
        TaskState::InProcess | TaskState::Finishing => ("ok", "in_process".to_string(), None),
        TaskState::Done { text, seconds } => ("ok", text, Some(seconds)),
        TaskState::Failed { reason, seconds } => ("fail", reason, Some(seconds)),
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
    use super::percent_decode;

    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("ab%2Fc+d"), "ab/c d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
