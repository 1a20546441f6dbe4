//! Subcommands. Each module owns its arguments and its `run`.

pub mod backup;
pub mod eval;
pub mod keys;
pub mod ledger;
pub mod ocr;
pub mod serve;
pub mod version;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ocrbox::ocr::hints::{Case, HintSpec, Hints};
use ocrbox::ocr::{Detector, Engine, Limits, ModelFiles, OcrError, Page};

/// Engine options shared by the commands that run OCR locally.
#[derive(clap::Args)]
pub struct EngineArgs {
    /// Load the models from DIR (laid out as the repository's models/) instead of the
    /// embedded copies.
    #[arg(long, value_name = "DIR", env = "OCRBOX_MODELS")]
    pub models: Option<PathBuf>,
    /// Text detector: PP-OCRv6 `small` (default) or `tiny`.
    #[arg(
        long,
        value_name = "tiny|small",
        env = "OCRBOX_DET",
        default_value = "small"
    )]
    pub det: Detector,
    /// Threads for one image's lines (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub hints: HintArgs,
}

/// Decoding hints, as on `POST /api/ocr/solve` (README, "Decoding hints").
#[derive(clap::Args)]
pub struct HintArgs {
    /// Digits 0-9 only.
    #[arg(long, help_heading = "Decoding hints")]
    pub numeric: bool,
    /// Only these characters (a space in CHARS allows spaces).
    #[arg(long, value_name = "CHARS", help_heading = "Decoding hints")]
    pub charset: Option<String>,
    /// At least N characters per line.
    #[arg(long, value_name = "N", help_heading = "Decoding hints")]
    pub min_len: Option<usize>,
    /// At most N characters per line.
    #[arg(long, value_name = "N", help_heading = "Decoding hints")]
    pub max_len: Option<usize>,
    /// Letters only in this case.
    #[arg(long, value_name = "upper|lower", help_heading = "Decoding hints")]
    pub case: Option<Case>,
    /// The image is one line of text: no detection.
    #[arg(long, help_heading = "Decoding hints")]
    pub single_line: bool,
}

impl EngineArgs {
    /// Builds the engine these options describe.
    pub fn engine(&self) -> Result<Engine, OcrError> {
        let files = match &self.models {
            Some(dir) => ModelFiles::from_dir(dir, self.det)?,
            None => ModelFiles::embedded(self.det),
        };
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Ok(Engine::from_files(&files)?.with_threads(threads))
    }
}

impl EngineArgs {
    /// The hints given, checked against `engine`'s dictionary.
    pub fn hints(&self, engine: &Engine) -> Result<Hints, String> {
        let h = &self.hints;
        let spec = HintSpec {
            numeric: h.numeric,
            charset: h.charset.clone(),
            min_len: h.min_len,
            max_len: h.max_len,
            case: h.case,
            single_line: h.single_line,
        };
        engine.hints(&spec).map_err(|e| e.to_string())
    }
}

/// Reads one file (an image, or every page of a PDF or TIFF); errors carry the message the
/// user sees.
pub fn read_file(engine: &Engine, path: &Path, hints: &Hints) -> Result<Vec<Page>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    engine
        .recognize_bytes(&bytes, &Limits::default(), hints)
        .map_err(|e| e.to_string())
}

/// The database `serve` and `keys` use unless told otherwise (`--db`, `OCRBOX_DB`).
pub const DEFAULT_DB: &str = "./ocrbox.redb";

/// Accepts a `postgres://` or `postgresql://` URL (a shared ledger).
pub fn parse_postgres_url(s: &str) -> Result<String, String> {
    match ocrbox::ledger::Location::parse(s) {
        ocrbox::ledger::Location::Postgres(url) => Ok(url),
        ocrbox::ledger::Location::File(_) => Err(format!(
            "expected a postgres:// URL, got {s:?} (a file ledger is --db)"
        )),
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 30s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration must be positive, got {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `20MiB`, `500KB`, `1G` or a bare number of bytes (KB/MB/GB are powers of 1000,
/// KiB/MiB/GiB powers of 1024, K/M/G powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (examples: 20MiB, 500KB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use KiB, MiB, KB, MB)"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("invalid size {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert_eq!(parse_size("20MiB").unwrap(), 20 << 20);
        assert_eq!(parse_size("500KB").unwrap(), 500_000);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("lots").is_err());
    }
}
