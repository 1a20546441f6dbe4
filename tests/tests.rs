//! The one integration-test binary (ripgrep's way): every `tests/*.rs` target would be a binary
//! of its own, each paying its own link under `cargo test --release`. Each area is a module.
//!
//! They drive the real `ocrbox` binary over real HTTP (or its real CLI) on real images.

/// Shared helpers: a temporary directory, the real server on a free loopback port, a client.
mod common;

/// Key administration through the admin socket (never over TCP).
mod admin;
/// The spec API step by step: balance, solve, poll, errors.
mod api;
/// Online backup of keys and credits while the server reads images.
mod backup;
/// Credits: reserved at submit, charged once on success, never overspent.
mod credits;
/// Documents of several pages (scanned PDF, multi-page TIFF): one credit per page, `\f` between pages, limits.
mod documents;
/// A shared PostgreSQL ledger: boxes share keys, credits and tasks (ignored without --ignored).
mod fleet;
/// `GET /healthz` and the opt-in metrics listener: counters, no keys, 503 at shutdown.
mod health_metrics;
/// Decoding hints on solve: obeyed by the decoder, refused with the reason when bad.
mod hints;
/// Hostile clients: malformed and oversized uploads, slow clients, secrets in logs.
mod hostile;
/// The OpenAPI document at `/api/openapi.json`: lists exactly the routes the server answers.
mod openapi;
/// The opt-in additions: the web page, the key header, `details=1`, `wait=N`.
mod options;

/// The OCR engine through `ocrbox ocr` and `ocrbox eval` on real fixtures.
mod engine;

/// Replays of the inputs the fuzzers once broke, through `harness`.
mod fuzz_regressions;
/// The fuzz targets' checks, shared with `fuzz/`.
#[path = "../fuzz/harness.rs"]
mod harness;
