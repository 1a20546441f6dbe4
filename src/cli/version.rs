//! The `--version` text: crate version, target triple and embedded model digests.

/// Shown by `ocrbox --version`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("OCRBOX_BUILD_TARGET"),
    ")\nmodels: PP-OCRv6 det tiny + small, rec small; PP-OCRv5 cls (",
    env!("OCRBOX_BUILD_MODELS"),
    ")"
);
