//! `ocrbox ocr FILE...`: read images from disk and print their text.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ocrbox::ocr::{Engine, Limits, ModelFiles, OcrError, Page};
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

/// Engine options shared by the commands that run OCR locally.
#[derive(clap::Args)]
pub struct EngineArgs {
    /// Load det.onnx, cls.onnx, rec.onnx and ppocrv5_dict.txt from DIR instead of the
    /// embedded copies.
    #[arg(long, value_name = "DIR", env = "OCRBOX_MODELS")]
    pub models: Option<PathBuf>,
    /// Threads for one image's lines (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl EngineArgs {
    /// Builds the engine these options describe.
    pub fn engine(&self) -> Result<Engine, OcrError> {
        let files = match &self.models {
            Some(dir) => ModelFiles::from_dir(dir)?,
            None => ModelFiles::embedded(),
        };
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Ok(Engine::from_files(&files)?.with_threads(threads))
    }
}

/// Reads one file; errors carry the message the user sees.
pub fn read_file(engine: &Engine, path: &Path) -> Result<Page, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    engine
        .recognize_bytes(&bytes, &Limits::default())
        .map_err(|e| e.to_string())
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
