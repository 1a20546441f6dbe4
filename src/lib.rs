//! ocrbox: an offline OCR appliance.
//!
//! Data flow: [`http`] (requests) → [`ledger`] (keys & credits) → [`workers`] (bounded queue,
//! inference threads running [`ocr::Engine`]) → [`tasks`] (results until expiry) → poll.

pub mod accuracy;
pub mod admin;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod ocr;
pub mod tasks;
pub mod workers;
