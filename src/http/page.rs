//! The web page at `/`: one self-contained HTML file (inline CSS and JS, no external
//! resources) for a person at a kiosk, a desktop or a phone. It talks to the API like any client,
//! sending the key in the `X-API-Key` header.

use http_body_util::Full;
use hyper::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};

use super::Response;

/// The page, compiled into the binary.
pub const HTML: &str = include_str!("page.html");

/// Everything inline, nothing fetched from elsewhere: the page works offline, and a script
/// injected through a recognised text could not load or send anything.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
img-src blob: data:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
frame-ancestors 'none'";

/// `GET /`.
pub fn response() -> Response {
    let mut resp = hyper::Response::new(Full::new(bytes::Bytes::from_static(HTML.as_bytes())));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
