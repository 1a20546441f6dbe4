//! Every way a request can fail, and the one place each becomes an HTTP response.

use std::time::Duration;

use hyper::StatusCode;

use super::json;
use super::Response;
use crate::ocr::hints::HintError;
use crate::ocr::DecodeError;
use crate::tasks::{FailReason, Internal};

/// A request failure. The `Display` text is the `detail` sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, unknown or revoked key (text fixed by the API spec).
    #[error("Invalid API key")]
    InvalidKey,
    /// Every remaining credit is spent or reserved (text fixed by the API spec).
    #[error("No solves remaining")]
    NoSolves,
    /// Unknown, expired or someone else's task (text fixed by the API spec).
    #[error("Task not found or expired")]
    TaskNotFound,
    #[error("Not found")]
    NoRoute,
    #[error("Method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// The request is malformed: not multipart, no `image` field, not an image, ...
    #[error("{0}")]
    BadRequest(String),
    /// A decoding hint that cannot be obeyed (worded by `ocr::hints`).
    #[error("{0}")]
    Hint(#[from] HintError),
    #[error("Upload too large (limit {limit} bytes)")]
    TooLarge { limit: u64 },
    /// A document with more pages than `--max-pages` (worded by the decoder).
    #[error("{0}")]
    TooManyPages(DecodeError),
    #[error("Server busy, retry in {} s", retry_after.as_secs())]
    QueueFull { retry_after: Duration },
    #[error("Request timed out")]
    Timeout,
    #[error("Server is shutting down")]
    ShuttingDown,
    /// The shared ledger (PostgreSQL) is down or too slow; the cause is logged, never sent.
    #[error("Ledger database unavailable, retry shortly")]
    LedgerUnavailable(String),
    /// Our fault; the cause is logged, never sent.
    #[error("Internal server error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidKey => StatusCode::UNAUTHORIZED,
            ApiError::NoSolves => StatusCode::PAYMENT_REQUIRED,
            ApiError::TaskNotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) | ApiError::Hint(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } | ApiError::TooManyPages(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::QueueFull { .. }
            | ApiError::ShuttingDown
            | ApiError::LedgerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response for this error: `{"status":"fail","detail":...}` with the right status and
    /// headers.
    pub fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::LedgerUnavailable(cause) => tracing::warn!(%cause, "ledger unavailable"),
            _ => {}
        }
        let mut resp = json::response(
            self.status(),
            &json::Failure {
                status: "fail",
                detail: self.to_string(),
            },
        );
        let headers = resp.headers_mut();
        match &self {
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(
                    hyper::header::ALLOW,
                    hyper::header::HeaderValue::from_static(allow),
                );
            }
            ApiError::QueueFull { retry_after } => {
                headers.insert(
                    hyper::header::RETRY_AFTER,
                    retry_after.as_secs().max(1).into(),
                );
            }
            ApiError::ShuttingDown | ApiError::LedgerUnavailable(_) => {
                headers.insert(hyper::header::RETRY_AFTER, 5u64.into());
            }
            // The body may be unread; closing avoids parsing the rest of it as a next request.
            ApiError::TooLarge { .. } | ApiError::Timeout => {
                headers.insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            _ => {}
        }
        resp
    }
}

/// The `result` text of a failed task, as the client reads it (also what a shared ledger
/// stores). The two spec strings come from [`ApiError`]'s own wording, so each exists once.
impl std::fmt::Display for FailReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailReason::Image(e) => write!(f, "{}", ApiError::from(e.clone())),
            FailReason::NoSolves => write!(f, "{}", ApiError::NoSolves),
            FailReason::Revoked => write!(f, "{}", ApiError::InvalidKey),
            FailReason::Internal(Internal::Engine) => f.write_str("internal OCR error"),
            FailReason::Internal(Internal::Ledger) => {
                f.write_str("internal error: could not record the solve")
            }
            FailReason::Lost => f.write_str("the server reading this task stopped; not charged"),
            FailReason::Recorded(detail) => f.write_str(detail),
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooManyPages { .. } => ApiError::TooManyPages(e),
            e => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl From<crate::ledger::LedgerError> for ApiError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        match e {
            crate::ledger::LedgerError::NoSolves => ApiError::NoSolves,
            crate::ledger::LedgerError::Revoked => ApiError::InvalidKey,
            crate::ledger::LedgerError::Unavailable(why) => ApiError::LedgerUnavailable(why),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_use_the_spec_wording() {
        assert_eq!(FailReason::NoSolves.to_string(), "No solves remaining");
        assert_eq!(FailReason::Revoked.to_string(), "Invalid API key");
        assert_eq!(
            FailReason::Image(DecodeError::Empty).to_string(),
            "empty image"
        );
        assert_eq!(
            FailReason::Internal(Internal::Engine).to_string(),
            "internal OCR error"
        );
    }
}
