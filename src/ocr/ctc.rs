//! CTC decoding: the recogniser's per-step class probabilities → characters.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use super::hints::Hints;

/// The character table: index 0 is the CTC blank, then the dictionary, then space.
pub struct Charset {
    /// Per class, the text it stands for, full-width ASCII forms folded (see [`halfwidth`]).
    chars: Vec<String>,
    /// Per class: may appear on a line written in a Latin script (see [`latin_class`]).
    latin: Vec<bool>,
    /// Text → its first class.
    index: HashMap<String, usize>,
    /// The classes of the ASCII digits and of the ASCII letters (see [`super::context`]).
    pub(super) digit_classes: Vec<usize>,
    pub(super) letter_classes: Vec<usize>,
}

impl Charset {
    /// Builds the table from the dictionary file (one character per line).
    pub fn new(dict: &str) -> Charset {
        let mut chars = vec![String::new()];
        chars.extend(
            dict.lines()
                .map(|l| l.trim_end_matches('\r').chars().map(halfwidth).collect()),
        );
        chars.push(" ".to_string());
        let latin = chars.iter().map(|c| c.chars().all(latin_class)).collect();
        let mut index = HashMap::new();
        for (i, c) in chars.iter().enumerate().skip(1) {
            index.entry(c.clone()).or_insert(i);
        }
        let classes_of = |f: fn(&char) -> bool| -> Vec<usize> {
            (1..chars.len())
                .filter(|&i| chars[i].len() == 1 && chars[i].chars().all(|c| f(&c)))
                .collect()
        };
        let digit_classes = classes_of(char::is_ascii_digit);
        let letter_classes = classes_of(char::is_ascii_alphabetic);
        Charset {
            chars,
            latin,
            index,
            digit_classes,
            letter_classes,
        }
    }

    /// Number of classes, blank included.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// The text class `i` stands for.
    pub fn folded(&self, i: usize) -> &str {
        &self.chars[i]
    }

    /// The class that stands for `text`, if any.
    pub fn class_of(&self, text: &str) -> Option<usize> {
        self.index.get(text).copied()
    }

    /// Whether some class reads as `c`.
    pub fn can_emit(&self, c: char) -> bool {
        let mut buf = [0u8; 4];
        self.index.contains_key(&*c.encode_utf8(&mut buf))
    }

    /// The space class (the last).
    pub fn space(&self) -> usize {
        self.chars.len() - 1
    }
}

/// One character read by CTC: its text, the span of output steps it covers, its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Glyph {
    pub text: String,
    pub first: usize,
    pub last: usize,
    pub p: f32,
}

/// A line's text and its confidence (mean probability of the kept characters, 0..1).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub text: String,
    pub confidence: f32,
}

impl Reading {
    /// (characters outside the Latin-line set, all non-space characters).
    pub fn script_counts(&self) -> (usize, usize) {
        script_counts(self.text.chars())
    }

    /// Nothing read.
    pub fn empty() -> Reading {
        Reading {
            text: String::new(),
            confidence: 0.0,
        }
    }
}

/// Decodes one line: greedy CTC, and when the line reads as Latin script but picked a few
/// characters of another (a `一` for a dash, a `①` for a digit: PP-OCR's dictionary is mostly
/// CJK), decodes again with those classes masked, so each such step takes the best Latin
/// class or blank that the model also considered.
///
/// `latin` forces the mask: the line belongs to a page that reads as Latin. A client's
/// `hints` replace that mask with theirs when they restrict the characters, and length bounds
/// choose the best path of an allowed length ([`bounded`]).
pub fn decode(
    probs: &[f32],
    classes: usize,
    charset: &Charset,
    latin: bool,
    hints: &Hints,
) -> Vec<Glyph> {
    let mask = match hints.allowed.as_deref() {
        Some(allowed) => Some(allowed),
        None => {
            let glyphs = greedy(probs, classes, charset, None, &[]);
            let (foreign, letters) = script_counts(glyphs.iter().flat_map(|g| g.text.chars()));
            let latin = foreign > 0 && (latin || mostly_latin(foreign, letters));
            if !latin && hints.is_none() {
                return glyphs;
            }
            latin.then_some(&charset.latin[..])
        }
    };
    let folds = &hints.folds;
    if hints.min_len.is_some() || hints.max_len.is_some() {
        let (min, max) = (hints.min_len.unwrap_or(0), hints.max_len);
        if let Some(glyphs) = bounded(probs, classes, charset, mask, folds, min, max) {
            return glyphs;
        }
    }
    greedy(probs, classes, charset, mask, folds)
}

/// At least two thirds Latin: a CJK line (or page) with a Latin word stays as read; a lone
/// character decides nothing.
pub fn mostly_latin(foreign: usize, letters: usize) -> bool {
    letters >= 2 && foreign * 3 <= letters
}

/// (characters outside the Latin-line set, all non-space characters) of a text.
fn script_counts(text: impl Iterator<Item = char>) -> (usize, usize) {
    text.filter(|&c| c != ' ').fold((0, 0), |(f, n), c| {
        (f + usize::from(!latin_class(c)), n + 1)
    })
}

/// One step's class probabilities, with each `(from, to)` fold's probability added to `to`.
fn folded<'a>(step: &'a [f32], folds: &[(usize, usize)], scratch: &'a mut Vec<f32>) -> &'a [f32] {
    if folds.is_empty() {
        return step;
    }
    scratch.clear();
    scratch.extend_from_slice(step);
    for &(from, to) in folds {
        scratch[to] += step[from];
    }
    scratch
}

/// Greedy CTC: best class per step (among `allowed` ones, blank always allowed), collapse
/// repeats, drop blanks.
pub fn greedy(
    probs: &[f32],
    classes: usize,
    charset: &Charset,
    allowed: Option<&[bool]>,
    folds: &[(usize, usize)],
) -> Vec<Glyph> {
    let ok = |i: usize| i == 0 || allowed.is_none_or(|a| a.get(i).copied().unwrap_or(false));
    let mut scratch = Vec::new();
    let mut path = Vec::with_capacity(probs.len() / classes.max(1));
    for step in probs.chunks_exact(classes) {
        let step = folded(step, folds, &mut scratch);
        path.push(
            step.iter()
                .copied()
                .enumerate()
                .filter(|&(i, _)| ok(i))
                .fold((0, f32::MIN), |a, (i, v)| if v > a.1 { (i, v) } else { a }),
        );
    }
    collapse(&path, charset)
}

/// A path of (class, probability) per step → characters: repeats collapsed, blanks dropped,
/// each character's probability that of its first step.
fn collapse(path: &[(usize, f32)], charset: &Charset) -> Vec<Glyph> {
    let mut glyphs: Vec<Glyph> = Vec::new();
    let mut prev = usize::MAX;
    for (t, &(best, p)) in path.iter().enumerate() {
        if best != 0 && best == prev {
            if let Some(g) = glyphs.last_mut() {
                g.last = t;
            }
        } else if best != 0 {
            glyphs.push(Glyph {
                text: charset.chars[best].clone(),
                first: t,
                last: t,
                p,
            });
        }
        prev = best;
    }
    glyphs
}

/// Classes kept per step by [`bounded`] besides the blank. With the softmax outputs of these
/// models the sixth-best class of a step is below 1e-3 nearly always, so a path through a
/// seventh would not win.
const CANDIDATES: usize = 6;

/// The most probable CTC path whose text has `min..=max` characters (`max` `None`: at least
/// `min`), among the `allowed` classes: Viterbi over (step, characters so far, class at this
/// step), with the blank and the [`CANDIDATES`] best classes of each step. `None` when no
/// path of such a length exists (fewer steps than characters asked for).
fn bounded(
    probs: &[f32],
    classes: usize,
    charset: &Charset,
    allowed: Option<&[bool]>,
    folds: &[(usize, usize)],
    min: usize,
    max: Option<usize>,
) -> Option<Vec<Glyph>> {
    let ok = |i: usize| allowed.is_none_or(|a| a.get(i).copied().unwrap_or(false));
    let steps = probs.len() / classes.max(1);
    // A path of `steps` steps emits at most `steps` characters. Without `max`, counts past
    // `min` are all equally fine: they share the state `cap`.
    let cap = max.unwrap_or(min).min(steps);
    if steps == 0 || min > cap {
        return None;
    }
    let mut scratch = Vec::new();
    let cands: Vec<Vec<(usize, f32)>> = probs
        .chunks_exact(classes)
        .map(|step| {
            let step = folded(step, folds, &mut scratch);
            let mut best: Vec<(usize, f32)> = Vec::with_capacity(CANDIDATES + 1);
            for (i, &p) in step.iter().enumerate().skip(1) {
                if !ok(i) || best.len() == CANDIDATES && p <= best[CANDIDATES - 1].1 {
                    continue;
                }
                let at = best.partition_point(|&(_, q)| q >= p);
                best.insert(at, (i, p));
                best.truncate(CANDIDATES);
            }
            best.insert(0, (0, step[0]));
            best
        })
        .collect();
    let k = CANDIDATES + 1;
    let state = |n: usize, j: usize| n * k + j;
    let ln = |p: f32| p.max(1e-30).ln();
    let mut score = vec![f32::NEG_INFINITY; (cap + 1) * k];
    for (j, &(c, p)) in cands[0].iter().enumerate() {
        let n = usize::from(c != 0);
        if n <= cap {
            score[state(n, j)] = ln(p);
        }
    }
    let mut back = vec![u32::MAX; steps * (cap + 1) * k];
    for t in 1..steps {
        let mut next = vec![f32::NEG_INFINITY; (cap + 1) * k];
        for n0 in 0..=cap {
            for (j0, &(c0, _)) in cands[t - 1].iter().enumerate() {
                let s0 = score[state(n0, j0)];
                if s0 == f32::NEG_INFINITY {
                    continue;
                }
                for (j, &(c, p)) in cands[t].iter().enumerate() {
                    let mut n = if c == 0 || c == c0 { n0 } else { n0 + 1 };
                    if n > cap {
                        if max.is_some() {
                            continue;
                        }
                        n = cap;
                    }
                    let s = s0 + ln(p);
                    if s > next[state(n, j)] {
                        next[state(n, j)] = s;
                        back[t * (cap + 1) * k + state(n, j)] = state(n0, j0) as u32;
                    }
                }
            }
        }
        score = next;
    }
    let (mut at, best) = (min..=cap)
        .flat_map(|n| (0..k).map(move |j| state(n, j)))
        .map(|s| (s, score[s]))
        .fold((0, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
    if best == f32::NEG_INFINITY {
        return None;
    }
    let mut path = vec![(0, 0.0); steps];
    for t in (0..steps).rev() {
        path[t] = cands[t][at % k];
        if t > 0 {
            at = back[t * (cap + 1) * k + at] as usize;
        }
    }
    Some(collapse(&path, charset))
}

/// Characters that belong on a line of Latin script: Latin letters with their diacritics,
/// digits, punctuation, currency, letterlike symbols (`™`, `℃`, `№`) and arrows/math. Not
/// Greek or Cyrillic look-alikes, CJK, kana, enclosed or box-drawing forms.
fn latin_class(c: char) -> bool {
    matches!(c as u32,
        0x0000..=0x036F | 0x1E00..=0x1EFF | 0x2000..=0x20CF | 0x2100..=0x214F | 0x2190..=0x22FF)
}

/// The text of `glyphs` (NFC) and its confidence (mean probability of the characters).
pub fn join(glyphs: &[Glyph]) -> Reading {
    let text = glyphs.iter().flat_map(|g| g.text.chars()).nfc().collect();
    let confidence = if glyphs.is_empty() {
        0.0
    } else {
        glyphs.iter().map(|g| g.p).sum::<f32>() / glyphs.len() as f32
    };
    Reading { text, confidence }
}

/// Folds full-width ASCII forms (which the Chinese-trained dictionary often prefers for
/// brackets and punctuation next to Latin text) to their ASCII characters.
fn halfwidth(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(seq: &[usize], classes: usize, p: impl Fn(usize) -> f32) -> Vec<f32> {
        let mut probs = Vec::new();
        for &c in seq {
            let mut s = vec![0.0f32; classes];
            s[c] = p(c);
            probs.extend(s);
        }
        probs
    }

    #[test]
    fn collapses_repeats_and_blanks() {
        let cs = Charset::new("a\nb\n");
        assert_eq!(cs.len(), 4); // blank, a, b, space
                                 // Steps: a a blank a b space b → "aab b"
        let probs = one_hot(
            &[1, 1, 0, 1, 2, 3, 2],
            4,
            |c| if c == 2 { 0.6 } else { 0.9 },
        );
        let r = join(&greedy(&probs, 4, &cs, None, &[]));
        assert_eq!(r.text, "aab b");
        assert!((r.confidence - (0.9 + 0.9 + 0.6 + 0.9 + 0.6) / 5.0).abs() < 1e-6);
    }

    #[test]
    fn full_width_forms_fold_to_ascii() {
        let cs = Charset::new("\u{FF08}\nR\n\u{FF09}\n");
        let probs = one_hot(&[1, 2, 3], cs.len(), |_| 1.0);
        assert_eq!(join(&greedy(&probs, cs.len(), &cs, None, &[])).text, "(R)");
    }

    #[test]
    fn all_blank_is_empty_with_zero_confidence() {
        let cs = Charset::new("a\n");
        let probs = [0.9, 0.1, 0.0, 0.95, 0.05, 0.0];
        assert_eq!(join(&greedy(&probs, 3, &cs, None, &[])), Reading::empty());
    }

    /// Steps that each put 0.6 on one class and 0.3 on another.
    fn two_best(steps: &[(usize, usize)], classes: usize) -> Vec<f32> {
        let mut probs = Vec::new();
        for &(a, b) in steps {
            let mut s = vec![0.0f32; classes];
            s[a] = 0.6;
            s[b] += 0.3;
            probs.extend(s);
        }
        probs
    }

    #[test]
    fn a_cjk_class_on_a_latin_line_gives_way_to_the_latin_runner_up() {
        // Classes: blank, T, O, 一, -, 口, space.
        let cs = Charset::new("T\nO\n一\n-\n口\n");
        let n = cs.len();
        // "TO一O": the model's second choice for 一 was "-".
        let probs = two_best(&[(1, 0), (2, 0), (3, 4), (2, 0)], n);
        assert_eq!(
            join(&decode(&probs, n, &cs, false, &Hints::none())).text,
            "TO-O"
        );
        // A CJK line keeps its CJK: "口一口" is not re-decoded.
        let probs = two_best(&[(5, 0), (3, 4), (5, 1)], n);
        assert_eq!(
            join(&decode(&probs, n, &cs, false, &Hints::none())).text,
            "口一口"
        );
        // A line of one CJK character is left alone.
        let probs = two_best(&[(3, 4)], n);
        assert_eq!(
            join(&decode(&probs, n, &cs, false, &Hints::none())).text,
            "一"
        );
        // ...unless its page reads as Latin.
        assert_eq!(
            join(&decode(&probs, n, &cs, true, &Hints::none())).text,
            "-"
        );
    }

    #[test]
    fn length_bounds_pick_the_best_path_of_that_length() {
        // Classes: blank, 1, 7, space. Steps 1 1 1 7, each with the blank second: "17".
        let cs = Charset::new("1\n7\n");
        let n = cs.len();
        let probs = two_best(&[(1, 0), (1, 0), (1, 0), (2, 0)], n);
        let len = |min, max| {
            let g = bounded(&probs, n, &cs, None, &[], min, max).map(|g| join(&g).text);
            g.unwrap_or_else(|| "-".into())
        };
        assert_eq!(len(0, Some(2)), "17");
        // Three characters: the runner-up blank splits the run of 1s; one: the 7 gives way.
        assert_eq!(len(3, Some(3)), "117");
        assert_eq!(len(3, None), "117");
        assert_eq!(len(1, Some(1)), "1");
        // Five characters cannot come out of four steps.
        assert_eq!(len(5, None), "-");
    }

    #[test]
    fn output_is_nfc() {
        let cs = Charset::new("e\n\u{301}\n");
        let probs = two_best(&[(1, 0), (2, 0)], cs.len());
        assert_eq!(
            join(&greedy(&probs, cs.len(), &cs, None, &[])).text,
            "\u{e9}"
        );
    }
}
