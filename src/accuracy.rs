//! How accuracy is scored: the one CER implementation, used by `ocrbox eval`, the tests and the
//! scripts (which score other engines' output with `ocrbox eval --predictions`).
//!
//! Texts are compared after NFC normalisation and folding every whitespace run to one space, as
//! the evaluation sets' README asks; optionally case-folded (the SROIE labels are upper case).

use unicode_normalization::UnicodeNormalization;

/// NFC, whitespace runs folded to one space, ends trimmed; upper-cased with `ignore_case`.
pub fn fold(s: &str, ignore_case: bool) -> String {
    let s: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .nfc()
        .collect();
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

/// Character error rate of `got` against `want` (folded, case kept): edits ÷ reference chars.
pub fn cer(want: &str, got: &str) -> f64 {
    let (w, g) = (fold(want, false), fold(got, false));
    let (w, g): (Vec<char>, Vec<char>) = (w.chars().collect(), g.chars().collect());
    edit_distance(&w, &g) as f64 / w.len().max(1) as f64
}

/// Totals over a set of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Score {
    pub char_errors: usize,
    pub chars: usize,
    pub word_errors: usize,
    pub words: usize,
    pub exact: usize,
    pub samples: usize,
}

impl Score {
    /// Adds one sample (both texts already [`fold`]ed); returns the sample's own CER.
    pub fn add(&mut self, truth: &str, got: &str) -> f64 {
        let (t, g): (Vec<char>, Vec<char>) = (truth.chars().collect(), got.chars().collect());
        let d = edit_distance(&t, &g);
        let (tw, gw): (Vec<&str>, Vec<&str>) =
            (truth.split(' ').collect(), got.split(' ').collect());
        self.char_errors += d;
        self.chars += t.len();
        self.word_errors += edit_distance(&tw, &gw).min(tw.len());
        self.words += tw.len();
        self.exact += usize::from(truth == got);
        self.samples += 1;
        d as f64 / t.len().max(1) as f64
    }

    /// Character error rate over the set, percent.
    pub fn cer_percent(&self) -> f64 {
        100.0 * self.char_errors as f64 / self.chars.max(1) as f64
    }

    /// Words right, percent (word edits capped at each reference's length).
    pub fn word_accuracy_percent(&self) -> f64 {
        100.0 - 100.0 * self.word_errors as f64 / self.words.max(1) as f64
    }

    /// Samples read exactly, percent.
    pub fn exact_percent(&self) -> f64 {
        100.0 * self.exact as f64 / self.samples.max(1) as f64
    }
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
    fn folding_normalises_space_case_and_composition() {
        assert_eq!(fold(" a \n\n b\tc ", false), "a b c");
        assert_eq!(fold("Total", true), "TOTAL");
        // "é" as e + combining acute equals the precomposed character after NFC.
        assert_eq!(fold("caf\u{65}\u{301}", false), "caf\u{e9}");
        assert_eq!(cer("abcd", "abxd"), 0.25);
    }

    #[test]
    fn scores_add_up() {
        let mut s = Score::default();
        s.add("ab cd", "ab cd");
        assert_eq!(s.add("ab cd", "ab ce"), 0.2);
        assert_eq!((s.char_errors, s.chars, s.exact, s.samples), (1, 10, 1, 2));
        assert_eq!(s.word_accuracy_percent(), 75.0);
    }
}
