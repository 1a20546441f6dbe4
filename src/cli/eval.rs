//! `ocrbox eval LABELS.tsv`: accuracy on a labelled set, scored by [`ocrbox::accuracy`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ocrbox::accuracy::{fold, Score};

use super::{read_file, EngineArgs};
use ocrbox::ocr::decode::decode;
use ocrbox::ocr::{document_text, Limits};

/// Arguments of `ocrbox eval`.
#[derive(clap::Args)]
pub struct Args {
    /// TSV file: image path (relative to the file), expected text (`\n`, `\t`, `\\` escaped).
    pub labels: PathBuf,
    /// Compare case-insensitively (for sets labelled in upper case).
    #[arg(long)]
    pub ignore_case: bool,
    /// Score another engine's output instead of running ours: JSON Lines of
    /// `{"file": IMAGE PATH, "text": ...}` (what `ocrbox ocr --json` and `scripts/*_ocr.py`
    /// write); images are matched by their canonical path.
    #[arg(long, value_name = "FILE.jsonl")]
    pub predictions: Option<PathBuf>,
    /// Read each image turned this many degrees clockwise (90, 180 or 270) instead: a turned
    /// page should read as the upright one (`scripts/turned-pages.sh`). Single images only.
    #[arg(long, value_name = "DEGREES", value_parser = parse_turn, conflicts_with = "predictions")]
    pub turn: Option<u16>,
    /// How many of the worst samples to list.
    #[arg(long, default_value_t = 5)]
    pub worst: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
}

fn parse_turn(s: &str) -> Result<u16, String> {
    s.parse()
        .ok()
        .filter(|d| [90, 180, 270].contains(d))
        .ok_or_else(|| format!("{s:?}: 90, 180 or 270"))
}

/// `img` turned `degrees` (90, 180 or 270, see [`parse_turn`]) clockwise.
fn turned(img: &image::RgbImage, degrees: u16) -> image::RgbImage {
    use image::imageops::{rotate180, rotate270, rotate90};
    match degrees {
        90 => rotate90(img),
        180 => rotate180(img),
        _ => rotate270(img),
    }
}

/// Undoes the label escapes.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Where the texts to score come from: our engine, or another engine's saved output.
enum Reader {
    /// The engine, the hints, and the turn (`--turn`).
    Engine(
        Box<ocrbox::ocr::Engine>,
        ocrbox::ocr::hints::Hints,
        Option<u16>,
    ),
    /// Image path (canonical) → text, from `--predictions`.
    Saved(HashMap<PathBuf, String>),
}

impl Reader {
    fn read(&self, base: &Path, path: &str) -> Result<String, String> {
        match self {
            Reader::Engine(engine, hints, None) => {
                read_file(engine, &base.join(path), hints).map(|p| document_text(&p))
            }
            Reader::Engine(engine, hints, Some(degrees)) => {
                let bytes = std::fs::read(base.join(path)).map_err(|e| e.to_string())?;
                let img = decode(&bytes, &Limits::default()).map_err(|e| e.to_string())?;
                let page = engine.recognize(&turned(&img, *degrees), hints);
                page.map(|p| p.text).map_err(|e| e.to_string())
            }
            // An image missing from the predictions counts as read empty.
            Reader::Saved(texts) => Ok(canonical(&base.join(path))
                .and_then(|p| texts.get(&p).cloned())
                .unwrap_or_default()),
        }
    }
}

fn canonical(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// Reads JSON Lines of `{"file": ..., "text": ...}`, keyed by the image's canonical path
/// (`file` as written, relative to the current directory).
fn predictions(path: &Path) -> Result<HashMap<PathBuf, String>, String> {
    let body = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    // Blank lines and `#` comments (e.g. a runner's summary line) are skipped.
    for (n, line) in body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        let (Some(file), Some(text)) = (v["file"].as_str(), v["text"].as_str()) else {
            return Err(format!(
                "{}:{}: needs \"file\" and \"text\"",
                path.display(),
                n + 1
            ));
        };
        let image = canonical(Path::new(file))
            .ok_or_else(|| format!("{}:{}: no such image {file:?}", path.display(), n + 1))?;
        out.insert(image, text.to_string());
    }
    Ok(out)
}

pub fn run(args: Args) -> ExitCode {
    let tsv = match std::fs::read_to_string(&args.labels) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ocrbox: {}: {e}", args.labels.display());
            return ExitCode::FAILURE;
        }
    };
    let reader = match &args.predictions {
        Some(p) => predictions(p).map(Reader::Saved),
        None => args
            .engine
            .engine()
            .map_err(|e| e.to_string())
            .and_then(|e| {
                let hints = args.engine.hints(&e)?;
                Ok(Reader::Engine(Box::new(e), hints, args.turn))
            }),
    };
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ocrbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = args.labels.parent().unwrap_or(Path::new("."));
    let mut score = Score::default();
    let mut samples = Vec::new();
    for line in tsv.lines().filter(|l| !l.trim().is_empty()) {
        let Some((path, truth)) = line.split_once('\t') else {
            eprintln!("ocrbox: skipping malformed line: {line}");
            continue;
        };
        let truth = fold(&unescape(truth), args.ignore_case);
        let got = match reader.read(base, path) {
            Ok(text) => fold(&text, args.ignore_case),
            Err(e) => {
                eprintln!("ocrbox: {path}: {e}");
                String::new()
            }
        };
        let cer = score.add(&truth, &got);
        samples.push((cer, path.to_string(), truth, got));
    }
    println!("{}: {} samples", args.labels.display(), score.samples);
    println!("CER            {:6.2} %", score.cer_percent());
    println!("word accuracy  {:6.2} %", score.word_accuracy_percent());
    println!("exact match    {:6.2} %", score.exact_percent());
    samples.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (cer, path, truth, got) in samples.iter().take(args.worst).filter(|s| s.0 > 0.0) {
        println!(
            "\n{path}  CER {:.1} %\n  want: {truth}\n  got:  {got}",
            cer * 100.0
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unescape() {
        assert_eq!(unescape(r"a\nb\\c\td"), "a\nb\\c\td");
    }
}
