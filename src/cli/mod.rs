//! Subcommands. Each module owns its arguments and its `run`.

pub mod eval;
pub mod keys;
pub mod ocr;
pub mod serve;
pub mod version;
