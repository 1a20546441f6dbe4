//! Subcommands. Each module owns its arguments and its `run`.

pub mod eval;
pub mod ocr;
pub mod version;
