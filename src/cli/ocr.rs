//! `ocrbox ocr FILE...`: read images from disk and print their text.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::{read_file, EngineArgs};
use serde_json::json;

/// Arguments of `ocrbox ocr`.
#[derive(clap::Args)]
pub struct Args {
    /// Image files to read (PNG, JPEG, BMP, TIFF, WebP, GIF).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print one JSON object per file (text, lines with confidence and box, timings).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn run(args: Args) -> ExitCode {
    let engine = match args.engine.engine() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ocrbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    let several = args.files.len() > 1;
    let mut out = std::io::stdout().lock();
    for (n, path) in args.files.iter().enumerate() {
        let t = Instant::now();
        let page = match read_file(&engine, path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("ocrbox: {}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let written = if args.json {
            let ms_of = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            let obj = json!({
                "file": path.display().to_string(),
                "text": page.text,
                "lines": page.lines,
                "time_ms": ms,
                "timings": {
                    "decode_ms": ms_of(page.timings.decode),
                    "detect_ms": ms_of(page.timings.detect),
                    "classify_ms": ms_of(page.timings.classify),
                    "recognize_ms": ms_of(page.timings.recognize),
                },
            });
            writeln!(out, "{obj}")
        } else {
            let sep = if n > 0 { "\n" } else { "" };
            if several {
                writeln!(out, "{sep}==> {} <==", path.display())
                    .and_then(|()| writeln!(out, "{}", page.text))
            } else {
                writeln!(out, "{}", page.text)
            }
        };
        // A reader that stopped (`ocrbox ocr *.png | head`) ends the run quietly.
        if let Err(e) = written.and_then(|()| out.flush()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("ocrbox: stdout: {e}");
            }
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
