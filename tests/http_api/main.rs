//! Black-box tests of `ocrbox serve` over real HTTP: the real binary on a free loopback port with
//! a temporary database.
//!
//! One test binary on purpose: each `tests/*.rs` target costs a fat-LTO link under
//! `cargo test --release`.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod api;
mod credits;
