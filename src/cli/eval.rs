//! `ocrbox eval LABELS.tsv`: accuracy on a labelled set.

use std::path::PathBuf;
use std::process::ExitCode;

use super::ocr::{read_file, EngineArgs};

/// Arguments of `ocrbox eval`.
#[derive(clap::Args)]
pub struct Args {
    /// TSV file: image path (relative to the file), expected text (`\n`, `\t`, `\\` escaped).
    pub labels: PathBuf,
    /// Compare case-insensitively (for sets labelled in upper case).
    #[arg(long)]
    pub ignore_case: bool,
    /// How many of the worst samples to list.
    #[arg(long, default_value_t = 5)]
    pub worst: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
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

/// Folds every whitespace run to one space and trims, as the data sets' README asks.
pub fn fold(s: &str, ignore_case: bool) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if ignore_case {
        s.to_uppercase()
    } else {
        s
    }
}

/// Levenshtein distance between two sequences.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

pub fn run(args: Args) -> ExitCode {
    let tsv = match std::fs::read_to_string(&args.labels) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ocrbox: {}: {e}", args.labels.display());
            return ExitCode::FAILURE;
        }
    };
    let engine = match args.engine.engine() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ocrbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = args.labels.parent().unwrap_or(std::path::Path::new("."));
    let (mut char_err, mut chars, mut word_err, mut words, mut exact, mut n) = (0, 0, 0, 0, 0, 0);
    let mut samples = Vec::new();
    for line in tsv.lines().filter(|l| !l.trim().is_empty()) {
        let Some((path, truth)) = line.split_once('\t') else {
            eprintln!("ocrbox: skipping malformed line: {line}");
            continue;
        };
        let truth = fold(&unescape(truth), args.ignore_case);
        let got = match read_file(&engine, &base.join(path)) {
            Ok(page) => fold(&page.text, args.ignore_case),
            Err(e) => {
                eprintln!("ocrbox: {path}: {e}");
                String::new()
            }
        };
        let (t, g): (Vec<char>, Vec<char>) = (truth.chars().collect(), got.chars().collect());
        let d = edit_distance(&t, &g);
        let (tw, gw): (Vec<&str>, Vec<&str>) =
            (truth.split(' ').collect(), got.split(' ').collect());
        char_err += d;
        chars += t.len();
        word_err += edit_distance(&tw, &gw).min(tw.len());
        words += tw.len();
        exact += usize::from(truth == got);
        n += 1;
        samples.push((
            d as f64 / t.len().max(1) as f64,
            path.to_string(),
            truth,
            got,
        ));
    }
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!("{}: {n} samples", args.labels.display());
    println!("CER            {:6.2} %", pct(char_err, chars));
    println!("word accuracy  {:6.2} %", 100.0 - pct(word_err, words));
    println!("exact match    {:6.2} %", pct(exact, n));
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
    fn edit_distance_counts_insertions_deletions_substitutions() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(edit_distance(&c("kitten"), &c("sitting")), 3);
        assert_eq!(edit_distance(&c(""), &c("abc")), 3);
        assert_eq!(edit_distance(&c("abc"), &c("abc")), 0);
    }

    #[test]
    fn labels_unescape_and_fold() {
        assert_eq!(unescape(r"a\nb\\c\td"), "a\nb\\c\td");
        assert_eq!(fold(" a \n\n b\tc ", false), "a b c");
        assert_eq!(fold("Total", true), "TOTAL");
    }
}
