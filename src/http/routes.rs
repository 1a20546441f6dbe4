//! The three endpoints of the API spec, with their opt-in additions (documents of several
//! pages, decoding hints, `details=1`, `wait=N`, the `X-API-Key` header), and the web page at `/`. Routing is a
//! `match` on method and path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use tokio::time::Instant;
use uuid::Uuid;

use super::error::ApiError;
use super::{health, json, multipart, openapi, page, AppState, Response};
use crate::ledger::{self, KeyHash, KeyInfo, Ledger, LedgerError, Reservation};
use crate::ocr::hints::{HintSpec, Hints};
use crate::ocr::Document;
use crate::tasks::{TaskState, TaskView};
use crate::workers::{Job, SubmitError};

/// Dispatches one request.
pub async fn route(state: Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    if req.method() == Method::POST && req.uri().path() == "/api/ocr/solve" {
        return solve(&state, req).await;
    }
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let api = api_param(&req);
    let query = req.uri().query().map(str::to_owned);
    // Nothing else reads a body; drain any (bounded) so the answer is not lost to a reset.
    multipart::discard(req, DISCARD_CAP).await;
    match (method, path.as_str()) {
        (Method::GET, "/" | "/index.html") => Ok(page::response()),
        (_, "/" | "/index.html") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (Method::GET, "/api/balance") => balance(&state, api).await,
        (_, "/api/balance") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (_, "/api/ocr/solve") => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        (Method::GET, p) if p.starts_with(RESULT) => {
            let opts = ResultOptions::parse(query.as_deref())?;
            result(&state, api, &p[RESULT.len()..], opts).await
        }
        (_, p) if p.starts_with(RESULT) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (Method::GET, "/healthz") => Ok(health::check(&state).await),
        (_, "/healthz") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (Method::GET, "/api/openapi.json") => Ok(openapi::response()),
        (_, "/api/openapi.json") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        _ => Err(ApiError::NoRoute),
    }
}

const RESULT: &str = "/api/ocr/result/";

/// The `route` label of a request in the metrics: a template from a fixed set (the task id is
/// not in it), and `other` for paths [`route`] does not serve, so neither ids nor probes for
/// random paths make new series. A new route gets its line here too.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/" | "/index.html" => "/",
        "/api/balance" => "/api/balance",
        "/api/ocr/solve" => "/api/ocr/solve",
        "/healthz" => "/healthz",
        "/api/openapi.json" => "/api/openapi.json",
        p if p.starts_with(RESULT) => "/api/ocr/result/{task_id}",
        _ => "other",
    }
}

/// What a 503 (queue full) suggests: about one image's processing time.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Most body bytes read from a request that should not have one.
const DISCARD_CAP: u64 = 1 << 20;

/// The caller's key: the spec's `api` query parameter (percent-decoded), or else the
/// `X-API-Key` header, which the web page uses so the key never appears in a URL (and so in no
/// access log or proxy log).
fn api_param(req: &Request<Incoming>) -> Option<String> {
    query_param(req.uri().query(), "api").or_else(|| {
        req.headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// Longest long-poll, seconds (larger `wait` values are clamped): below common proxy and
/// client read timeouts (30–60 s).
const MAX_WAIT_S: u64 = 25;

/// The opt-in parameters of the result endpoint.
#[derive(Debug, Default, PartialEq)]
struct ResultOptions {
    /// `wait=N`: answer when the task ends, or after N seconds (at most [`MAX_WAIT_S`]).
    wait: Duration,
    /// `details=1`: add each page's size and lines (text, confidence, box).
    details: bool,
}

impl ResultOptions {
    fn parse(query: Option<&str>) -> Result<ResultOptions, ApiError> {
        let wait = match query_param(query, "wait") {
            None => Duration::ZERO,
            Some(v) => {
                let secs: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s >= 0.0)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("wait must be a number of seconds, got {v:?}"))
                    })?;
                Duration::from_secs_f64(secs.min(MAX_WAIT_S as f64))
            }
        };
        let details = match query_param(query, "details").as_deref() {
            None | Some("0" | "false") => false,
            Some("1" | "true" | "") => true,
            Some(v) => {
                return Err(ApiError::BadRequest(format!(
                    "details must be 1 or 0, got {v:?}"
                )))
            }
        };
        Ok(ResultOptions { wait, details })
    }
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Runs a ledger call on the blocking pool: every handler reaches the ledger through here.
/// A redb read is quick, but [`ledger::reserve`] waits for a credit being charged, and a
/// charge holds its lock across a commit (an fsync: seconds on a worn SD card); a shared
/// ledger waits for the database. On a runtime thread that wait would stall every connection
/// served by that thread.
async fn ledger_call<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Arc<dyn Ledger>) -> Result<T, LedgerError> + Send + 'static,
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
    let last_24h = ledger_call(state, move |l| l.usage_24h(&hash)).await?;
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
    let reservation = ledger_call(state, move |l| ledger::reserve(l, hash)).await?;
    if state.pool.is_full() {
        return Err(ApiError::QueueFull {
            retry_after: RETRY_AFTER,
        });
    }
    Ok((reservation, hash))
}

async fn solve(state: &AppState, req: Request<Incoming>) -> Result<Response, ApiError> {
    let admitted = match hints(state, req.uri().query()) {
        Ok(hints) => admit(state, api_param(&req))
            .await
            .map(|(reservation, hash)| (reservation, hash, hints)),
        Err(e) => Err(e),
    };
    let (reservation, hash, hints) = match admitted {
        Ok(ok) => ok,
        Err(e) => {
            // Drain a modest upload so the client reads our 401/402/503 instead of a reset.
            multipart::discard(req, state.max_upload).await;
            return Err(e);
        }
    };
    let (image, reservation) = count_pages(
        state,
        multipart::read_image(req, state.max_upload).await?,
        reservation,
    )
    .await?;
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    let id = reservation.task();
    let deadline = state.tasks.create(id, hash);
    let job = Job {
        image,
        deadline,
        reservation,
        hints,
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

/// The decoding hints of a solve (`numeric`, `charset`, `min_len`, `max_len`, `case`,
/// `single_line`), checked against the model's dictionary before the upload is read; any
/// other parameter but `api` is refused, so a misspelt hint is not silently ignored.
fn hints(state: &AppState, query: Option<&str>) -> Result<Arc<Hints>, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let spec = HintSpec::from_pairs(pairs.iter().map(|(k, v)| (&**k, &**v)), &["api"])?;
    if spec.is_empty() {
        return Ok(Arc::new(Hints::none()));
    }
    Ok(Arc::new(state.pool.engine().hints(&spec)?))
}

/// Sniffs the upload (never the file name) and counts its pages, so a non-image, a broken
/// document or one of too many pages is refused now rather than after queueing, and holds one
/// credit per page: a key with fewer credits than pages gets 402 and nothing is charged.
async fn count_pages(
    state: &AppState,
    image: Bytes,
    mut reservation: Reservation,
) -> Result<(Bytes, Reservation), ApiError> {
    let limits = state.doc_limits;
    // Off the runtime: opening a PDF parses its cross-reference table and page tree.
    tokio::task::spawn_blocking(move || {
        let pages = Document::open(&image, &limits)?.pages() as u64;
        reservation.extend_to(pages)?;
        Ok::<_, ApiError>((image, reservation))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("page count: {e}")))?
}

async fn result(
    state: &AppState,
    api: Option<String>,
    raw_id: &str,
    opts: ResultOptions,
) -> Result<Response, ApiError> {
    // A missing key is fine: the unguessable task id is itself the capability to read the result.
    let caller = authenticate_optional(state, api)
        .await?
        .map(|(hash, _)| hash);
    let id = Uuid::parse_str(raw_id).map_err(|_| ApiError::TaskNotFound)?;
    let visible = |task: Option<TaskView>| match task {
        // Someone else's task gets the same answer as an unknown id: do not confirm it exists.
        Some(t) if caller.is_none_or(|c| c == t.owner) => Ok(t),
        _ => Err(ApiError::TaskNotFound),
    };
    let mut task = visible(read_task(state, id).await?)?;
    if !opts.wait.is_zero() && in_process(&task.state) {
        task = visible(wait_for_end(state, id, task, opts.wait).await?)?;
    }
    let solves = solves_of(state, task.owner).await?;
    let (status, result, time, pages) = match task.state {
        TaskState::InProcess | TaskState::Finishing => ("ok", "in_process".to_string(), None, None),
        TaskState::Done {
            text,
            pages,
            seconds,
        } => ("ok", text, Some(seconds), opts.details.then_some(pages)),
        TaskState::Failed { reason, seconds } => ("fail", reason.to_string(), Some(seconds), None),
    };
    Ok(json::response(
        StatusCode::OK,
        &json::TaskResult {
            status,
            result,
            task_id: id.to_string(),
            time,
            solves,
            pages,
        },
    ))
}

fn in_process(state: &TaskState) -> bool {
    matches!(state, TaskState::InProcess | TaskState::Finishing)
}

/// The task, unless unknown or expired: from this box's store, or where the ledger keeps
/// tasks (a fleet), from there (any box may have accepted it).
async fn read_task(state: &AppState, id: Uuid) -> Result<Option<TaskView>, ApiError> {
    if !state.ledger.shares_tasks() {
        return Ok(state.tasks.get(&id));
    }
    let found = ledger_call(state, move |l| l.task(&id)).await?;
    Ok(found.map(|(owner, record)| TaskView {
        owner,
        state: record.map_or(TaskState::InProcess, TaskState::from_record),
        ended: state.tasks.get(&id).and_then(|local| local.ended),
    }))
}

/// How often a long-poll reads a task that another box runs (no wake-up crosses boxes).
const REMOTE_POLL: Duration = Duration::from_millis(250);

/// Long-poll: waits (on the runtime, holding no worker and no thread) until the task ends,
/// `wait` passes, or the server stops; then reads the task again (`None`: it expired). When
/// [`super::MAX_WAITERS`] polls already wait, answers at once.
async fn wait_for_end(
    state: &AppState,
    id: Uuid,
    task: TaskView,
    wait: Duration,
) -> Result<Option<TaskView>, ApiError> {
    let Ok(_slot) = state.waiters.try_acquire() else {
        return Ok(Some(task));
    };
    let deadline = Instant::now() + wait;
    let Some(ended) = task.ended else {
        return poll_until_end(state, id, deadline).await;
    };
    let ended = ended.notified();
    let stopping = state.stopping.notified();
    tokio::pin!(ended, stopping);
    // Registered before the state is read again, so an end in between is not missed.
    ended.as_mut().enable();
    stopping.as_mut().enable();
    let Some(now) = read_task(state, id).await? else {
        return Ok(None);
    };
    if !in_process(&now.state) || state.is_shutting_down() {
        return Ok(Some(now));
    }
    tokio::select! {
        () = ended => {}
        () = stopping => {}
        () = tokio::time::sleep_until(deadline) => {}
    }
    read_task(state, id).await
}

/// Long-poll of a task another box runs: reads it every [`REMOTE_POLL`] until it ends,
/// `deadline` passes, or the server stops.
async fn poll_until_end(
    state: &AppState,
    id: Uuid,
    deadline: Instant,
) -> Result<Option<TaskView>, ApiError> {
    loop {
        let pause = REMOTE_POLL.min(deadline.saturating_duration_since(Instant::now()));
        let stopping = state.stopping.notified();
        tokio::select! {
            () = stopping => {}
            () = tokio::time::sleep(pause) => {}
        }
        let task = read_task(state, id).await?;
        let ended = task.as_ref().is_none_or(|t| !in_process(&t.state));
        if ended || Instant::now() >= deadline || state.is_shutting_down() {
            return Ok(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{query_param, ResultOptions, MAX_WAIT_S};
    use std::time::Duration;

    #[test]
    fn result_options_parse_clamp_and_refuse() {
        let parse = |q| ResultOptions::parse(Some(q));
        assert_eq!(parse("api=k").unwrap(), ResultOptions::default());
        let o = parse("wait=2.5&details=1").unwrap();
        assert_eq!((o.wait, o.details), (Duration::from_millis(2500), true));
        assert_eq!(
            parse("wait=3600").unwrap().wait,
            Duration::from_secs(MAX_WAIT_S)
        );
        assert!(!parse("details=0").unwrap().details);
        for bad in ["wait=-1", "wait=soon", "wait=NaN", "details=2"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

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
