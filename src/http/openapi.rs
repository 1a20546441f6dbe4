//! `GET /api/openapi.json`: the OpenAPI 3.1 description of every path, parameter, response
//! and error of the service, spec and additions (`openapi.json` beside this file, written and
//! reviewed by hand). `tests/openapi.rs` checks that it lists exactly the routes the server
//! answers; `scripts/schemathesis.sh` runs Schemathesis against a live server with it.

use std::sync::LazyLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};

use super::Response;

/// The document as written; `info.version` is a placeholder filled in by [`DOCUMENT`].
const SOURCE: &str = include_str!("openapi.json");

/// The document served: the source with this build's version.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(SOURCE.replacen("@CARGO_PKG_VERSION@", env!("CARGO_PKG_VERSION"), 1))
});

/// `GET /api/openapi.json`. The same bytes for the life of the binary: cacheable for an hour.
pub fn response() -> Response {
    let mut resp = hyper::Response::new(Full::new(DOCUMENT.clone()));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_json_with_this_version() {
        let doc: serde_json::Value = serde_json::from_slice(&DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }
}
