//! CTC decoding: the recogniser's per-step class probabilities → characters.

/// The character table: index 0 is the CTC blank, then the dictionary, then space.
pub struct Charset {
    chars: Vec<String>,
}

impl Charset {
    /// Builds the table from the dictionary file (one character per line).
    pub fn new(dict: &str) -> Charset {
        let mut chars = vec![String::new()];
        chars.extend(dict.lines().map(|l| l.trim_end_matches('\r').to_string()));
        chars.push(" ".to_string());
        Charset { chars }
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
    /// Nothing read.
    pub fn empty() -> Reading {
        Reading {
            text: String::new(),
            confidence: 0.0,
        }
    }
}

/// Greedy CTC: best class per step, collapse repeats, drop blanks.
pub fn greedy(probs: &[f32], classes: usize, charset: &Charset) -> Vec<Glyph> {
    let mut glyphs: Vec<Glyph> = Vec::new();
    let mut prev = usize::MAX;
    for (t, step) in probs.chunks_exact(classes).enumerate() {
        let (best, p) = step
            .iter()
            .copied()
            .enumerate()
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

/// The text of `glyphs` and its confidence (mean probability of the characters).
pub fn join(glyphs: &[Glyph]) -> Reading {
    let text = glyphs.iter().map(|g| g.text.as_str()).collect();
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
        let r = join(&greedy(&probs, 4, &cs));
        assert_eq!(r.text, "aab b");
        assert!((r.confidence - (0.9 + 0.9 + 0.6 + 0.9 + 0.6) / 5.0).abs() < 1e-6);
    }

    #[test]
    fn full_width_forms_fold_to_ascii() {
        let cs = Charset::new("\u{FF08}\nR\n\u{FF09}\n");
        let probs = one_hot(&[1, 2, 3], cs.len(), |_| 1.0);
        assert_eq!(join(&greedy(&probs, cs.len(), &cs)).text, "(R)");
    }

    #[test]
    fn all_blank_is_empty_with_zero_confidence() {
        let cs = Charset::new("a\n");
        let probs = [0.9, 0.1, 0.0, 0.95, 0.05, 0.0];
        assert_eq!(join(&greedy(&probs, 3, &cs)), Reading::empty());
    }
}
