//! `ocrbox ocr FILE...`

use std::process::ExitCode;

/// Arguments of `ocrbox ocr`.
#[derive(clap::Args)]
pub struct Args {
    /// Image files to read.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Print JSON (one object per file) instead of plain text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> ExitCode {
    ExitCode::FAILURE
}
