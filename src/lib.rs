//! ocrbox: an offline OCR appliance.
//!
//! Data flow: [`http`] (requests) → [`ledger`] (keys & credits) → [`workers`] (bounded queue,
//! inference threads running [`ocr::Engine`]) → [`tasks`] (results until expiry) → poll.

pub mod ocr;
