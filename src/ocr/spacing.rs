//! Word spaces from the ink: the recogniser drops spaces in tight Latin text (around
//! punctuation, in serif fonts, on receipts). The strip itself shows where the words are, so
//! each gap between two Latin characters read without a space is measured in blank columns and
//! a space put in where it is wide, or where it is half as wide and the recogniser itself gave
//! the space class some probability there (it often sees the space and lets the blank win);
//! not where the recogniser all but ruled a space out. Spaces the recogniser did read are
//! kept: taking out those over narrow gaps fixed `C+ +` but cost more on pages, where crops
//! catch the neighbouring lines' ink and gaps look narrower than they are. Letter-spaced lines
//! are the exception: there the recogniser reads spaces between letters, and the blank between
//! letters, measured on the line itself, says which gaps part words ([`TRACKED_FROM`]).

use super::ctc::Glyph;
use super::ink::Ink;

/// Longest run of blank columns in `blank[from..to]`.
fn longest_blank(blank: &[bool], from: usize, to: usize) -> usize {
    let (mut best, mut run) = (0, 0);
    for &b in &blank[from.min(blank.len())..to.min(blank.len())] {
        run = if b { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Below this many spaced-out character pairs the pitch of a line is not known well enough.
const MIN_PAIRS: usize = 3;
/// A blank gap of this many character pitches is a word space... (0.6 with PP-OCRv5, which
/// dropped spaces; PP-OCRv6 emits most spaces itself, and 0.6 then added false ones on
/// dot-matrix receipts. `scripts/eval-all.sh`, small det: 0.6 / 0.7 / 0.8 gave receipt pages
/// 6.24 / 5.95 / 5.89 %, receipt lines 3.30 / 3.16 / 3.20 %, rendered lines 0.32 / 0.43 / 0.46 %;
/// 1.0 lost rendered spaces, 0.43 % on tiny.)
const SPACE: f32 = 0.8;
/// ...unless a narrow glyph stands beside it (its cell is mostly blank in monospaced text).
const SPACE_BY_NARROW: f32 = 1.0;
/// A narrower gap is a space too when the recogniser gave the space class at least
/// [`SPACE_SEEN`] at some step between the two characters. `scripts/eval-all.sh` (small det),
/// rendered lines / receipt lines / rendered pages / receipt pages CER, against the ink rule
/// alone (0.46 / 3.23 / 0.18 / 5.86 %): probability 0.05 with gaps of 0.3 / 0.5 / 0.6 / 0.7
/// pitches 0.21 / 0.18 / 0.21 / 0.36 and 3.02 / 3.02 / 3.06 / 3.06 %; at 0.5 pitches,
/// probability 0.02 / 0.05 / 0.1 / 0.2 gave 0.18 / 0.18 / 0.25 / 0.25 and 3.06 / 3.02 / 2.99 /
/// 3.06 %; pages 0.15 / 5.83 %. Without a gap floor any space the model half-saw went in
/// (0.36–0.43 %). Captchas, multilingual lines and pages unchanged.
const SPACE_HALF_SEEN: f32 = 0.5;
/// The space probability that makes a gap of [`SPACE_HALF_SEEN`] pitches a space.
const SPACE_SEEN: f32 = 0.05;
/// A wide gap is no space where the recogniser gave the space class under this: on faded
/// thermal receipts the faint letters fall below Otsu's threshold and look blank (`M A I D`).
/// Receipt pages 5.83 → 5.69 / 5.65 / 5.62 / 5.61 % at 1e-4 / 1e-3 / 3e-3 / 1e-2; receipt
/// lines 3.02 % up to 3e-3, 3.13 % at 1e-2; the other sets unchanged.
const SPACE_UNSEEN: f32 = 1e-3;
/// Letter-spaced text (headings, signs, German *Sperrsatz*): where the blank between the letters
/// of a line (the median over the pairs read without a space) is wider than this many pitches,
/// the excess is taken off every gap before it is compared with the thresholds above, and no
/// gap up to [`LETTER_GAP_SPAN`] times that blank is a space, read or not (the recogniser reads
/// letters tracked 0.4 em apart as `wit h 6 02 d 7 f`, and the half-seen rule above added the
/// rest). Letter gaps are 0.06–0.25 pitches in print, 0.08–0.44 on receipts (10th–98th
/// percentile of lines), 0.41–0.56 for letters tracked 0.35–0.5 em. Measured on DejaVu lines
/// rendered with 0–0.5 em of tracking (CER, before → after; RapidOCR 3.10, Tesseract 5 `--psm
/// 7`): 40 mixed 12.4 → 0.62 % (12.0, 2.2), 40 monospaced 11.5 → 0.65 % (10.6, 1.7); tuned on
/// two other such sets (26.6 → 1.06 %, 27.1 → 0.48 %). 0.35 instead: the same there, receipt
/// pages 4.39 → 4.41 % (0.4: 4.40, one space lost in `12 31.00`); the other dev sets unchanged.
const TRACKED_FROM: f32 = 0.4;
/// See [`TRACKED_FROM`]: letter-spaced words are 1.3–1.9 pitches apart, their letters 0.4–0.75.
const LETTER_GAP_SPAN: f32 = 1.5;
/// Pairs of characters read without a space that a line needs for its letter gap to be
/// measured (6 or 8 left more letter-spaced lines as read; receipts the same).
const MIN_LETTER_PAIRS: usize = 4;
/// A line read with a space between (nearly) every two characters is looked at for letter
/// spacing when it has at least this many pairs of characters.
const MIN_SPACED_OUT_PAIRS: usize = 6;
/// Punctuation whose ink is much narrower than its advance. (Narrow letters and digits are
/// left out: in proportional text they are spaced like the rest, and adding them lost more
/// spaces than it saved.)
const NARROW: &str = ".,:;'\"`()[]{}|!";

fn latin(g: &Glyph) -> bool {
    g.text.chars().all(|c| c.is_ascii_graphic())
}

/// Puts word spaces where the strip shows them (see the module doc). `ink` is that of the line as
/// the recogniser saw it (height 48, unpadded); `step` is the width in pixels of one output
/// step. Thresholds are in character pitches (the median distance between the centres of
/// neighbouring characters) so they hold at any font size; they were set on the rendered and
/// receipt line sets (CER 0.89 → 0.50 % and 8.32 → 5.44 %; pages 0.59 → 0.55 % and
/// 9.40 → 8.16 %) and add no space to the captchas. `space_p(a, b)` is the recogniser's
/// highest space probability over steps `a..=b`.
pub fn respace(
    glyphs: Vec<Glyph>,
    ink: &Ink,
    step: f32,
    space_p: impl Fn(usize, usize) -> f32,
) -> Vec<Glyph> {
    let centre = |g: &Glyph| ((g.first + g.last + 1) as f32 * step / 2.0) as usize;
    let chars: Vec<&Glyph> = glyphs.iter().filter(|g| g.text != " ").collect();
    let pairs = chars.windows(2).map(|p| [p[0], p[1]]);
    let joined: Vec<[&Glyph; 2]> = pairs
        .clone()
        .filter(|[a, b]| !spaced(&glyphs, a, b))
        .collect();
    // Pitch and letter gap come from the pairs read without a space, unless the recogniser put
    // a space between (nearly) every letter, as it does in some letter-spaced lines.
    let spaced_out = joined.len() < MIN_PAIRS;
    let sample: Vec<[&Glyph; 2]> = match spaced_out {
        false => joined,
        true if chars.len() > MIN_SPACED_OUT_PAIRS => pairs.collect(),
        true => return glyphs,
    };
    let mut pitches: Vec<usize> = sample
        .iter()
        .map(|[a, b]| centre(b).saturating_sub(centre(a)))
        .collect();
    pitches.sort_unstable();
    let pitch = pitches[pitches.len() / 2].max(1) as f32;
    let blank = ink.blank_columns();
    let gap = |a: &Glyph, b: &Glyph| longest_blank(&blank, centre(a), centre(b)) as f32 / pitch;
    let mut letter_gaps: Vec<f32> = sample
        .iter()
        .filter(|[a, b]| latin(a) && latin(b))
        .map(|[a, b]| gap(a, b))
        .collect();
    letter_gaps.sort_unstable_by(f32::total_cmp);
    let letter_gap = match letter_gaps.len() {
        n if n < MIN_LETTER_PAIRS => 0.0,
        n if !spaced_out => letter_gaps[n / 2],
        // Every pair spaced: the narrower gaps are letters only if wider ones part words
        // (`1 2 3 4` evenly spaced stays as read).
        n if letter_gaps[n - 1] >= 2.0 * letter_gaps[n / 4] => letter_gaps[n / 4],
        _ => 0.0,
    };
    let tracking = (letter_gap - TRACKED_FROM).max(0.0);
    let tracked = tracking > 0.0;
    if spaced_out && !tracked {
        return glyphs;
    }
    // In letter-spaced text, two letters this close belong to one word.
    let letters = |a: &Glyph, b: &Glyph| tracked && gap(a, b) <= letter_gap * LETTER_GAP_SPAN;
    let glyphs = if tracked {
        untrack(glyphs, letters)
    } else {
        glyphs
    };

    let mut out: Vec<Glyph> = Vec::with_capacity(glyphs.len() + 4);
    for g in glyphs {
        let Some(prev) = out.iter().rev().find(|p| p.text != " ") else {
            out.push(g);
            continue;
        };
        if g.text == " " || !latin(&g) || !latin(prev) {
            out.push(g);
            continue;
        }
        let space_before = out.last().is_some_and(|p| p.text == " ");
        let narrow = NARROW.contains(prev.text.as_str()) || NARROW.contains(g.text.as_str());
        let want = if narrow { SPACE_BY_NARROW } else { SPACE };
        let wide = || {
            if letters(prev, &g) {
                return false;
            }
            let gap = gap(prev, &g) - tracking;
            let seen = space_p(prev.last, g.first);
            gap >= want && seen >= SPACE_UNSEEN || gap >= SPACE_HALF_SEEN && seen >= SPACE_SEEN
        };
        if !space_before && wide() {
            let at = (prev.last + g.first) / 2;
            out.push(Glyph {
                text: " ".into(),
                first: at,
                last: at,
                p: (prev.p + g.p) / 2.0,
            });
        }
        out.push(g);
    }
    out
}

/// `glyphs` without the spaces read between two Latin characters that are only as far apart as
/// the letters of a word (`same_word`).
fn untrack(glyphs: Vec<Glyph>, same_word: impl Fn(&Glyph, &Glyph) -> bool) -> Vec<Glyph> {
    let keep: Vec<bool> = (0..glyphs.len())
        .map(|i| {
            if glyphs[i].text != " " {
                return true;
            }
            let prev = glyphs[..i].iter().rev().find(|g| g.text != " ");
            let next = glyphs[i + 1..].iter().find(|g| g.text != " ");
            match (prev, next) {
                (Some(a), Some(b)) if latin(a) && latin(b) => !same_word(a, b),
                _ => true,
            }
        })
        .collect();
    glyphs
        .into_iter()
        .zip(keep)
        .filter_map(|(g, k)| k.then_some(g))
        .collect()
}

/// Whether a space was read between characters `a` and `b` of `glyphs`.
fn spaced(glyphs: &[Glyph], a: &Glyph, b: &Glyph) -> bool {
    glyphs
        .iter()
        .any(|g| g.text == " " && g.first > a.last && g.last < b.first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A strip with one 10 px ink block per character, starting at each given x; the glyphs
    /// are centred on their blocks (one output step = 4 px).
    fn line(text: &str, xs: &[u32], spaces_read: &[usize]) -> (Vec<Glyph>, RgbImage) {
        let mut strip = RgbImage::from_pixel(xs[xs.len() - 1] + 20, 48, Rgb([240, 240, 240]));
        let mut glyphs = Vec::new();
        for (i, (c, &x)) in text.chars().zip(xs).enumerate() {
            for px in x..x + 10 {
                for y in 12..36 {
                    strip.put_pixel(px, y, Rgb([20, 20, 20]));
                }
            }
            if spaces_read.contains(&i) {
                let t = (x / 4 - 1) as usize;
                glyphs.push(Glyph {
                    text: " ".into(),
                    first: t,
                    last: t,
                    p: 0.9,
                });
            }
            let t = ((x + 5) / 4) as usize;
            glyphs.push(Glyph {
                text: c.to_string(),
                first: t,
                last: t,
                p: 0.9,
            });
        }
        (glyphs, strip)
    }

    /// The recogniser gave the space class 1 % everywhere: enough for a wide gap, not for a
    /// narrow one.
    fn faint(_: usize, _: usize) -> f32 {
        0.01
    }

    fn text(g: &[Glyph]) -> String {
        g.iter().map(|g| g.text.as_str()).collect()
    }

    #[test]
    fn wide_gap_gets_a_space() {
        // Pitch 12 px (10 ink + 2 blank); the gap before "c" is 14 px blank = 1.2 pitches.
        let (g, s) = line("abcde", &[0, 12, 36, 48, 60], &[]);
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "ab cde");
    }

    #[test]
    fn spaces_read_are_kept() {
        let (g, s) = line("C++xy", &[0, 12, 24, 36, 48], &[2]);
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "C+ +xy");
    }

    #[test]
    fn narrow_punctuation_needs_a_wider_gap() {
        // 0.8 pitches: a space between letters, not next to a full stop.
        let (g, s) = line("abcd", &[0, 12, 32, 44], &[]);
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "ab cd");
        let (g, s) = line("ab.d", &[0, 12, 32, 44], &[]);
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "ab.d");
    }

    #[test]
    fn short_or_non_latin_lines_are_left_alone() {
        let (g, s) = line("ab", &[0, 40], &[]);
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "ab");
        let (g, s) = line("中文字符", &[0, 12, 40, 52], &[]);
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "中文字符");
    }

    #[test]
    fn a_half_wide_gap_is_a_space_where_the_recogniser_half_saw_one() {
        // Pitch 12 px; the gap before "c" is 8 px blank = 0.67 pitches, between steps 4 and 10.
        let (g, s) = line("abcd", &[0, 12, 30, 42], &[]);
        let seen = |a: usize, b: usize| if a <= 6 && b >= 6 { 0.2 } else { 0.0 };
        assert_eq!(text(&respace(g.clone(), &Ink::of(&s), 4.0, seen)), "ab cd");
        assert_eq!(text(&respace(g.clone(), &Ink::of(&s), 4.0, faint)), "abcd");
        // A touching pair (0.17 pitches of blank) stays joined however sure the model is.
        let (g, s) = line("abcd", &[0, 12, 24, 36], &[]);
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, |_, _| 0.9)), "abcd");
    }

    #[test]
    fn a_wide_gap_the_recogniser_gave_no_space_chance_stays_joined() {
        // Faint letters look blank to the ink rule; the model read them as one word.
        let (g, s) = line("abcde", &[0, 12, 36, 48, 60], &[]);
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, |_, _| 0.0)), "abcde");
    }

    /// `words` drawn letter-spaced: 10 px letters `gap` px apart, words 40 px apart; the
    /// recogniser read a space after the letters at `spaces_read` (indices into the joined text).
    fn tracked(words: &[&str], gap: u32, spaces_read: &[usize]) -> (Vec<Glyph>, RgbImage) {
        let (mut text, mut xs, mut x) = (String::new(), Vec::new(), 0);
        for w in words {
            for c in w.chars() {
                text.push(c);
                xs.push(x);
                x += 10 + gap;
            }
            x += 40 - gap;
        }
        let before: Vec<usize> = spaces_read.iter().map(|i| i + 1).collect();
        line(&text, &xs, &before)
    }

    #[test]
    fn letter_spaced_words_lose_the_spaces_read_between_their_letters() {
        // Letters 10 px apart (0.5 pitches), words 40 px: the spaces read inside words go.
        let (g, s) = tracked(&["with", "bits"], 10, &[2, 3, 5]);
        assert_eq!(text(&g), "wit h bi ts");
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "with bits");
    }

    #[test]
    fn letter_spacing_adds_no_space_where_the_recogniser_half_saw_one() {
        // Letters 12 px apart (0.55 pitches, a space at 0.5 in plain text) and a space half
        // seen everywhere: only the word gap gets one.
        let (g, s) = tracked(&["abcd", "efgh"], 12, &[]);
        let seen = |_: usize, _: usize| 0.2;
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, seen)), "abcd efgh");
    }

    #[test]
    fn a_line_spaced_out_letter_by_letter_keeps_only_its_word_spaces() {
        let every: Vec<usize> = (0..9).collect();
        let (g, s) = tracked(&["21:51", "Bryce"], 10, &every);
        assert_eq!(text(&g), "2 1 : 5 1 B r y c e");
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "21:51 Bryce");
        // Evenly spaced characters may each be a word: left as read.
        let (g, s) = line(
            "1234567",
            &[0, 30, 60, 90, 120, 150, 180],
            &[1, 2, 3, 4, 5, 6],
        );
        assert_eq!(text(&respace(g, &Ink::of(&s), 4.0, faint)), "1 2 3 4 5 6 7");
    }
}
