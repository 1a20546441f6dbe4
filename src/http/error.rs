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
            ApiError::QueueFull { .. } | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response for this error: `{"status":"fail","detail":...}` with the right status and
    /// headers.
    pub fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
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
            ApiError::ShuttingDown => {
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

/// The `result` text of a failed task, as the client reads it. The two spec strings come from
/// [`ApiError`]'s own wording, so each exists once.
pub fn failure_detail(reason: &FailReason) -> String {
    match reason {
        FailReason::Image(e) => ApiError::from(e.clone()).to_string(),
        FailReason::NoSolves => ApiError::NoSolves.to_string(),
        FailReason::Revoked => ApiError::InvalidKey.to_string(),
        FailReason::Internal(Internal::Engine) => "internal OCR error".into(),
        FailReason::Internal(Internal::Ledger) => {
            "internal error: could not record the solve".into()
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
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_use_the_spec_wording() {
        assert_eq!(failure_detail(&FailReason::NoSolves), "No solves remaining");
        assert_eq!(failure_detail(&FailReason::Revoked), "Invalid API key");
        assert_eq!(
            failure_detail(&FailReason::Image(DecodeError::Empty)),
            "empty image"
        );
        assert_eq!(
            failure_detail(&FailReason::Internal(Internal::Engine)),
            "internal OCR error"
        );
    }
}
