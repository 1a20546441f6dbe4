//! `ocrbox ocr FILE...`: read images from disk and print their text.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{read_file, EngineArgs};
use ocrbox::ocr::{document_text, Line, Timings};
use serde_json::json;

/// Arguments of `ocrbox ocr`.
#[derive(clap::Args)]
pub struct Args {
    /// Files to read: images (PNG, JPEG, BMP, TIFF, WebP, GIF), scanned PDFs and multi-page
    /// TIFFs (pages separated by a form feed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print one JSON object per file (text, pages with their size and lines with confidence
    /// and box, timings).
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
    let hints = match args.engine.hints(&engine) {
        Ok(h) => h,
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
        let pages = match read_file(&engine, path, &hints) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("ocrbox: {}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let text = document_text(&pages);
        let written = if args.json {
            let ms_of = |stage: fn(&Timings) -> Duration| {
                pages
                    .iter()
                    .map(|p| stage(&p.timings))
                    .sum::<Duration>()
                    .as_secs_f64()
                    * 1000.0
            };
            let lines: Vec<&Line> = pages.iter().flat_map(|p| &p.lines).collect();
            let obj = json!({
                "file": path.display().to_string(),
                "text": text,
                "lines": lines,
                "pages": pages,
                "time_ms": ms,
                "timings": {
                    "decode_ms": ms_of(|t| t.decode),
                    "detect_ms": ms_of(|t| t.detect),
                    "classify_ms": ms_of(|t| t.classify),
                    "recognize_ms": ms_of(|t| t.recognize),
                },
            });
            writeln!(out, "{obj}")
        } else {
            let sep = if n > 0 { "\n" } else { "" };
            if several {
                writeln!(out, "{sep}==> {} <==", path.display())
                    .and_then(|()| writeln!(out, "{text}"))
            } else {
                writeln!(out, "{text}")
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
