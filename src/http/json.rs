//! Response bodies, field for field as in the API spec (struct field order = JSON order).

use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde::Serialize;

use super::Response;

/// `GET /api/balance`.
#[derive(Serialize)]
pub struct Balance {
    pub status: &'static str,
    pub solves: u64,
    #[serde(rename = "24h")]
    pub last_24h: u64,
}

/// `POST /api/ocr/solve`.
#[derive(Serialize)]
pub struct Submitted {
    pub status: &'static str,
    pub result: &'static str,
    pub task_id: String,
    pub solves: u64,
}

/// `GET /api/ocr/result/{task_id}`.
#[derive(Serialize)]
pub struct TaskResult {
    pub status: &'static str,
    pub result: String,
    pub task_id: String,
    /// Processing seconds; `null` while in process.
    pub time: Option<f64>,
    pub solves: u64,
    /// With `details=1` on a finished task: each page's size and lines. Absent otherwise, so a
    /// spec client's bytes are unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<std::sync::Arc<Vec<crate::ocr::Page>>>,
}

/// Any error.
#[derive(Serialize)]
pub struct Failure {
    pub status: &'static str,
    pub detail: String,
}

/// Serialises `body` as an `application/json` response.
pub fn response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    // Serialising these plain structs cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = hyper::Response::new(Full::new(bytes::Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
