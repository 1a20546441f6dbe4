//! CTC decoding: the recogniser's per-step class probabilities → characters.

use unicode_normalization::UnicodeNormalization;

/// The character table: index 0 is the CTC blank, then the dictionary, then space.
pub struct Charset {
    chars: Vec<String>,
    /// Per class: may appear on a line written in a Latin script (see [`latin_class`]).
    latin: Vec<bool>,
}

impl Charset {
    /// Builds the table from the dictionary file (one character per line).
    pub fn new(dict: &str) -> Charset {
        let mut chars = vec![String::new()];
        chars.extend(dict.lines().map(|l| l.trim_end_matches('\r').to_string()));
        chars.push(" ".to_string());
        let latin = chars
            .iter()
            .map(|c| c.chars().map(halfwidth).all(latin_class))
            .collect();
        Charset { chars, latin }
    }

    /// Number of classes, blank included.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.chars.len()
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
/// `latin` forces the mask: the line belongs to a page that reads as Latin.
pub fn decode(probs: &[f32], classes: usize, charset: &Charset, latin: bool) -> Vec<Glyph> {
    let glyphs = greedy(probs, classes, charset, None);
    let (foreign, letters) = script_counts(glyphs.iter().flat_map(|g| g.text.chars()));
    if foreign > 0 && (latin || mostly_latin(foreign, letters)) {
        greedy(probs, classes, charset, Some(&charset.latin))
    } else {
        glyphs
    }
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

/// Greedy CTC: best class per step (among `allowed` ones, blank always allowed), collapse
/// repeats, drop blanks.
pub fn greedy(
    probs: &[f32],
    classes: usize,
    charset: &Charset,
    allowed: Option<&[bool]>,
) -> Vec<Glyph> {
    let ok = |i: usize| i == 0 || allowed.is_none_or(|a| a.get(i).copied().unwrap_or(false));
    let mut glyphs: Vec<Glyph> = Vec::new();
    let mut prev = usize::MAX;
    for (t, step) in probs.chunks_exact(classes).enumerate() {
        let (best, p) = step
            .iter()
            .copied()
            .enumerate()
            .filter(|&(i, _)| ok(i))
            .fold((0, f32::MIN), |a, (i, v)| if v > a.1 { (i, v) } else { a });
        if best != 0 && best == prev {
            if let Some(g) = glyphs.last_mut() {
                g.last = t;
            }
        } else if best != 0 {
            glyphs.push(Glyph {
                text: charset.chars[best].chars().map(halfwidth).collect(),
                first: t,
                last: t,
                p,
            });
        }
        prev = best;
    }
    glyphs
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
        let r = join(&greedy(&probs, 4, &cs, None));
        assert_eq!(r.text, "aab b");
        assert!((r.confidence - (0.9 + 0.9 + 0.6 + 0.9 + 0.6) / 5.0).abs() < 1e-6);
    }

    #[test]
    fn full_width_forms_fold_to_ascii() {
        let cs = Charset::new("\u{FF08}\nR\n\u{FF09}\n");
        let probs = one_hot(&[1, 2, 3], cs.len(), |_| 1.0);
        assert_eq!(join(&greedy(&probs, cs.len(), &cs, None)).text, "(R)");
    }

    #[test]
    fn all_blank_is_empty_with_zero_confidence() {
        let cs = Charset::new("a\n");
        let probs = [0.9, 0.1, 0.0, 0.95, 0.05, 0.0];
        assert_eq!(join(&greedy(&probs, 3, &cs, None)), Reading::empty());
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
        assert_eq!(join(&decode(&probs, n, &cs, false)).text, "TO-O");
        // A CJK line keeps its CJK: "口一口" is not re-decoded.
        let probs = two_best(&[(5, 0), (3, 4), (5, 1)], n);
        assert_eq!(join(&decode(&probs, n, &cs, false)).text, "口一口");
        // A line of one CJK character is left alone.
        let probs = two_best(&[(3, 4)], n);
        assert_eq!(join(&decode(&probs, n, &cs, false)).text, "一");
        // ...unless its page reads as Latin.
        assert_eq!(join(&decode(&probs, n, &cs, true)).text, "-");
    }

    #[test]
    fn output_is_nfc() {
        let cs = Charset::new("e\n\u{301}\n");
        let probs = two_best(&[(1, 0), (2, 0)], cs.len());
        assert_eq!(join(&greedy(&probs, cs.len(), &cs, None)).text, "\u{e9}");
    }
}
