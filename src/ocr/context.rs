//! Letters among digits, digits among letters: the recogniser confuses look-alikes (`O`/`0`,
//! `S`/`5`, `I`/`1`, `C`/`0`: `15.0C`, `86Q671`, `B0ARD` on receipts, `22D41` on digit
//! captchas) whose word says which kind the character is.

use super::ctc::{Charset, Glyph};

/// The runner-up of the other kind must have had this probability at some step of the
/// character. `scripts/eval-all.sh` against no swap (receipt lines / receipt pages / digit
/// captchas 3.02 / 5.65 / 3.44 % CER): 0.01 gave 3.06 / 5.58 / 3.11 % (`PAX:0` became `PAX:O`),
/// 0.05 gave 3.02 / 5.58 / 3.11 %; the other sets unchanged. Swapping on both neighbours alone
/// (not the word) did as well on receipts but turned a `1` in a commit hash into an `l`.
const MIN_P: f32 = 0.05;

/// What kind of character a glyph is, for its neighbours.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Digit,
    Letter,
    Other,
}

fn kind(text: &str) -> Kind {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() => Kind::Digit,
        (Some(c), None) if c.is_ascii_alphabetic() => Kind::Letter,
        _ => Kind::Other,
    }
}

/// In a word (characters between spaces) of digits with one letter, the letter becomes the
/// best digit the recogniser gave at least [`MIN_P`] at its steps; in a word of letters with one
/// digit, the digit becomes the best letter. Words with a few of each (`WA14-3A`, hashes, `A4`)
/// are left as read. `ok`: the classes the decoder may pick (hints).
pub fn by_word(
    glyphs: &mut [Glyph],
    probs: &[f32],
    classes: usize,
    charset: &Charset,
    ok: impl Fn(usize) -> bool,
) {
    let steps = probs.len() / classes.max(1);
    let mut start = 0;
    while start < glyphs.len() {
        let end = glyphs[start..]
            .iter()
            .position(|g| g.text == " ")
            .map_or(glyphs.len(), |n| start + n);
        let kinds: Vec<Kind> = glyphs[start..end].iter().map(|g| kind(&g.text)).collect();
        let digits = kinds.iter().filter(|&&k| k == Kind::Digit).count();
        let letters = kinds.iter().filter(|&&k| k == Kind::Letter).count();
        let odd = match (digits, letters) {
            (1, n) if n >= 2 => Some((Kind::Digit, &charset.letter_classes)),
            (n, 1) if n >= 2 => Some((Kind::Letter, &charset.digit_classes)),
            _ => None,
        };
        if let Some((own, want)) = odd {
            let i = start + kinds.iter().position(|&k| k == own).unwrap_or(0);
            let g = &glyphs[i];
            let mut best = (0usize, 0.0f32);
            for t in g.first..=g.last.min(steps.saturating_sub(1)) {
                let step = &probs[t * classes..(t + 1) * classes];
                for &c in want {
                    if step[c] > best.1 && ok(c) {
                        best = (c, step[c]);
                    }
                }
            }
            if best.1 >= MIN_P {
                glyphs[i].text = charset.folded(best.0).to_string();
            }
        }
        start = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classes: blank, 0, 1, 5, C, A, B, O, space.
    fn charset() -> Charset {
        Charset::new("0\n1\n5\nC\nA\nB\nO\n")
    }

    /// One step per character of `text`, each its own class at 0.9, with `alt` (class, p)
    /// added at the step of character `at`.
    fn read(cs: &Charset, text: &str, at: usize, alt: (usize, f32)) -> (Vec<Glyph>, Vec<f32>) {
        let n = cs.len();
        let mut probs = vec![0.0; n * text.chars().count()];
        let mut glyphs = Vec::new();
        for (t, c) in text.chars().enumerate() {
            let class = cs.class_of(&c.to_string()).expect("in the charset");
            probs[t * n + class] = 0.9;
            glyphs.push(Glyph {
                text: c.to_string(),
                first: t,
                last: t,
                p: 0.9,
            });
        }
        probs[at * n + alt.0] += alt.1;
        (glyphs, probs)
    }

    fn text(g: &[Glyph]) -> String {
        g.iter().map(|g| g.text.as_str()).collect()
    }

    #[test]
    fn the_odd_one_out_takes_the_runner_up_of_its_words_kind() {
        let cs = charset();
        let (zero, oh) = (cs.class_of("0").unwrap(), cs.class_of("O").unwrap());
        // A letter among digits, a digit among letters; a space ends a word.
        let (mut g, p) = read(&cs, "150C 5", 3, (zero, 0.08));
        by_word(&mut g, &p, cs.len(), &cs, |_| true);
        assert_eq!(text(&g), "1500 5");
        let (mut g, p) = read(&cs, "B0AB", 1, (oh, 0.3));
        by_word(&mut g, &p, cs.len(), &cs, |_| true);
        assert_eq!(text(&g), "BOAB");
    }

    #[test]
    fn mixed_words_unsure_runners_up_and_hints_keep_the_reading() {
        let cs = charset();
        let zero = cs.class_of("0").unwrap();
        for (word, at) in [("A5", 0), ("AB15", 1), ("15C0C", 2)] {
            let (mut g, p) = read(&cs, word, at, (zero, 0.5));
            by_word(&mut g, &p, cs.len(), &cs, |_| true);
            assert_eq!(text(&g), word);
        }
        let (mut g, p) = read(&cs, "150C", 3, (zero, 0.01));
        by_word(&mut g, &p, cs.len(), &cs, |_| true);
        assert_eq!(text(&g), "150C");
        let (mut g, p) = read(&cs, "150C", 3, (zero, 0.5));
        by_word(&mut g, &p, cs.len(), &cs, |c| c != zero);
        assert_eq!(text(&g), "150C");
    }
}
