//! Image sniffing, decoding and model-input preparation, as the server does it; see
//! `fuzz/harness.rs`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::decode(data);
});
