//! `ocrbox eval LABELS.tsv`

use std::process::ExitCode;

/// Arguments of `ocrbox eval`.
#[derive(clap::Args)]
pub struct Args {
    /// TSV file: image path (relative to the file), expected text.
    pub labels: std::path::PathBuf,
}

pub fn run(_args: Args) -> ExitCode {
    ExitCode::FAILURE
}
