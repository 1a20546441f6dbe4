//! Line recognition: a height-48 strip → characters, by CTC greedy decoding.

use image::RgbImage;

use super::models::{as_f32, Model};
use super::preprocess::{resize, to_tensor, Norm};
use super::spacing;
use super::OcrError;

pub(super) const H: usize = 48;

/// Strip widths are padded up to one of these (each is one tract plan: ~90 ms to build and
/// ~20 MiB to keep). The reference never feeds less than 320 (its default shape), and the
/// recogniser mixes context across the whole strip, so narrower inputs would change its answers.
/// Run time grows linearly with width (~4.7 ms per 100 px). Weighed by the 1565 line widths of
/// the eval sets (`scripts/bench-buckets.sh`), these cost 1.06× the exact-width lower bound
/// per line with 8 plans in use; steps of 80 px would save 3 % for 15 plans (300 MiB),
/// doubling widths would cost 11 % more for 4. Wider lines are squeezed into the last bucket.
pub(super) const BUCKETS: [usize; 10] = [320, 480, 640, 800, 960, 1280, 1600, 2048, 2560, 3200];

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

/// Recognised text and its confidence (mean probability of the kept characters).
pub fn recognize(
    model: &Model,
    charset: &Charset,
    line: &RgbImage,
) -> Result<(String, f32), OcrError> {
    let (w, h) = line.dimensions();
    let want = (H as f32 * w as f32 / h.max(1) as f32).ceil() as usize;
    let max = BUCKETS[BUCKETS.len() - 1];
    let rw = want.clamp(1, max);
    let bw = BUCKETS.iter().copied().find(|&b| b >= rw).unwrap_or(max);
    let resized = resize(line, rw as u32, H as u32);
    let input = to_tensor(&resized, H, bw, Norm::SYMMETRIC, [0.0; 3]);
    let out = model.run([1, 3, H, bw], input)?;
    let shape = out.shape().to_vec();
    let probs = as_f32(&out, "rec")?;
    let classes = *shape.last().unwrap_or(&0);
    if classes != charset.len() {
        return Err(OcrError::Model(format!(
            "rec output has {classes} classes, dictionary {}",
            charset.len()
        )));
    }
    let steps = probs.len() / classes;
    let glyphs = ctc_glyphs(probs, classes, charset);
    let glyphs = spacing::respace(glyphs, &resized, bw as f32 / steps.max(1) as f32);
    Ok(join(&glyphs))
}

/// One character read by CTC: its text, the span of output steps it covers, its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Glyph {
    pub text: String,
    pub first: usize,
    pub last: usize,
    pub p: f32,
}

/// Greedy CTC: best class per step, collapse repeats, drop blanks.
pub fn ctc_glyphs(probs: &[f32], classes: usize, charset: &Charset) -> Vec<Glyph> {
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
pub fn join(glyphs: &[Glyph]) -> (String, f32) {
    let text = glyphs.iter().map(|g| g.text.as_str()).collect();
    let score = if glyphs.is_empty() {
        0.0
    } else {
        glyphs.iter().map(|g| g.p).sum::<f32>() / glyphs.len() as f32
    };
    (text, score)
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

    #[test]
    fn ctc_collapses_repeats_and_blanks() {
        let cs = Charset::new("a\nb\n");
        assert_eq!(cs.len(), 4); // blank, a, b, space
                                 // Steps: a a blank a b space b → "aab b"
        let seq = [1, 1, 0, 1, 2, 3, 2];
        let mut probs = Vec::new();
        for &c in &seq {
            let mut s = vec![0.0f32; 4];
            s[c] = if c == 2 { 0.6 } else { 0.9 };
            probs.extend(s);
        }
        let (text, conf) = join(&ctc_glyphs(&probs, 4, &cs));
        assert_eq!(text, "aab b");
        assert!((conf - (0.9 + 0.9 + 0.6 + 0.9 + 0.6) / 5.0).abs() < 1e-6);
    }

    #[test]
    fn full_width_forms_fold_to_ascii() {
        let cs = Charset::new("\u{FF08}\nR\n\u{FF09}\n");
        let mut probs = Vec::new();
        for c in [1, 2, 3] {
            let mut s = vec![0.0f32; cs.len()];
            s[c] = 1.0;
            probs.extend(s);
        }
        assert_eq!(join(&ctc_glyphs(&probs, cs.len(), &cs)).0, "(R)");
    }

    #[test]
    fn all_blank_is_empty_with_zero_confidence() {
        let cs = Charset::new("a\n");
        let probs = [0.9, 0.1, 0.0, 0.95, 0.05, 0.0];
        assert_eq!(join(&ctc_glyphs(&probs, 3, &cs)), (String::new(), 0.0));
    }
}
