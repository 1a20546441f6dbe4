//! Dot leaders from the ink: the recogniser reads a run of dots (`CASH........ RM 70.30`,
//! a table of contents) as one or a few full stops, since CTC needs a blank step between two
//! equal characters and a leader's dots are often closer than two steps apart. Where it read
//! a full stop, the strip is searched for the row of small, evenly spaced blots it belongs to,
//! and the run of full stops is given as many dots as the row has.

use super::ctc::Glyph;
use super::ink::{Blot, Ink};

/// A leader's dot is at most this share of the strip's height wide and high (a full stop in a
/// 48 px strip is 3–8 px; letters are 15 px and up).
const DOT: f32 = 0.25;
/// Neighbouring dots of a leader are at most this many character pitches apart (monospaced
/// leaders put one dot per character cell).
const LINK: f32 = 1.6;
/// ... their centres at most this share of the strip's height above or below the first dot's...
const LEVEL: f32 = 0.1;
/// ... and neither side of their boxes under half or over twice the first dot's (JPEG specks
/// and letter parts are not dots).
const LIKE: f32 = 2.0;
/// Fewer dots than this are punctuation or an ellipsis, which the recogniser reads itself.
const MIN_DOTS: usize = 3;
/// Below this many characters the pitch of a line is not known well enough.
const MIN_CHARS: usize = 4;

/// Gives each run of full stops in `glyphs` (spaces read among them included) as many dots as
/// the row of dots it was read from has in `ink`, that of the line as the recogniser saw it; `step`
/// is the width in pixels of one output step.
pub fn restore(glyphs: Vec<Glyph>, ink: &Ink, step: f32) -> Vec<Glyph> {
    if !glyphs.iter().any(|g| g.text == ".") {
        return glyphs;
    }
    let centre = |g: &Glyph| (g.first + g.last + 1) as f32 * step / 2.0;
    let xs: Vec<f32> = glyphs
        .iter()
        .filter(|g| g.text != " ")
        .map(centre)
        .collect();
    if xs.len() < MIN_CHARS {
        return glyphs;
    }
    let mut steps: Vec<f32> = xs.windows(2).map(|p| p[1] - p[0]).collect();
    steps.sort_by(f32::total_cmp);
    let pitch = steps[steps.len() / 2].max(1.0);
    let h = ink.height as f32;
    let dots: Vec<Blot> = ink
        .blots()
        .into_iter()
        .filter(|b| b.width() as f32 <= DOT * h && b.height() as f32 <= DOT * h)
        .collect();
    if dots.len() < MIN_DOTS {
        return glyphs;
    }

    let mut out = Vec::with_capacity(glyphs.len() + 16);
    let mut i = 0;
    while i < glyphs.len() {
        if glyphs[i].text != "." {
            out.push(glyphs[i].clone());
            i += 1;
            continue;
        }
        // The run: full stops from i to j, with nothing but spaces among them.
        let mut j = i;
        for (k, g) in glyphs.iter().enumerate().skip(i + 1) {
            match g.text.as_str() {
                "." => j = k,
                " " => {}
                _ => break,
            }
        }
        let run = &glyphs[i..=j];
        let read = run.iter().filter(|g| g.text == ".").count();
        // Its dots lie between the characters read around it.
        let lo = glyphs[..i]
            .iter()
            .rfind(|g| g.text != " ")
            .map_or(0.0, |g| centre(g) + pitch / 2.0);
        let hi = glyphs[j + 1..]
            .iter()
            .find(|g| g.text != " ")
            .map_or(f32::INFINITY, |g| centre(g) - pitch / 2.0);
        let row = leader(
            &dots,
            (centre(&run[0]), centre(&glyphs[j])),
            (lo, hi),
            pitch,
            h,
        );
        match row {
            Some(row) if row.len() >= MIN_DOTS && row.len() > read => {
                let p = run
                    .iter()
                    .filter(|g| g.text == ".")
                    .map(|g| g.p)
                    .sum::<f32>()
                    / read as f32;
                out.extend(row.iter().map(|&x| {
                    let t = (x / step) as usize;
                    Glyph {
                        text: ".".into(),
                        first: t,
                        last: t,
                        p,
                    }
                }));
            }
            _ => out.extend_from_slice(run),
        }
        i = j + 1;
    }
    out
}

/// The centres of the row of dots that the full stops read at `read.0..=read.1` (pixels) came
/// from, within `bounds`: the dot nearest the first one read, then its like neighbours on
/// either side. None when no dot is there or the row does not reach the last full stop read.
fn leader(
    dots: &[Blot],
    read: (f32, f32),
    bounds: (f32, f32),
    pitch: f32,
    h: f32,
) -> Option<Vec<f32>> {
    let inside: Vec<&Blot> = dots
        .iter()
        .filter(|b| b.cx() >= bounds.0 && b.cx() <= bounds.1)
        .collect();
    let seed = inside
        .iter()
        .enumerate()
        .min_by(|a, b| {
            (a.1.cx() - read.0)
                .abs()
                .total_cmp(&(b.1.cx() - read.0).abs())
        })
        .filter(|(_, b)| (b.cx() - read.0).abs() <= pitch)?
        .0;
    let first = inside[seed];
    let like = |b: &Blot| {
        let ratio = |a: usize, b: usize| a as f32 / b as f32;
        (b.cy() - first.cy()).abs() <= LEVEL * h
            && (1.0 / LIKE..=LIKE).contains(&ratio(b.width(), first.width()))
            && (1.0 / LIKE..=LIKE).contains(&ratio(b.height(), first.height()))
    };
    // Walk outwards from the seed; each step takes the nearest like blot, if near enough.
    let walk = |range: &mut dyn Iterator<Item = usize>| {
        let mut xs = Vec::new();
        let mut last = first.cx();
        for k in range {
            let b = inside[k];
            if (b.cx() - last).abs() > LINK * pitch {
                break;
            }
            if like(b) {
                xs.push(b.cx());
                last = b.cx();
            }
        }
        xs
    };
    let left = walk(&mut (0..seed).rev());
    let right = walk(&mut (seed + 1..inside.len()));
    let mut row: Vec<f32> = left.into_iter().rev().collect();
    row.push(first.cx());
    row.extend(right);
    let reaches = row.last().is_some_and(|&x| x >= read.1 - pitch / 2.0);
    reaches.then_some(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A strip with 12 px letters at `letters` and 4 px dots on the baseline at `dots` (x of
    /// their left edges); glyphs for `text` at the x given for each character (step = 4 px).
    fn strip(letters: &[u32], dots: &[u32]) -> RgbImage {
        let mut s = RgbImage::from_pixel(400, 48, Rgb([240, 240, 240]));
        for &x in letters {
            for px in x..x + 10 {
                for y in 12..36 {
                    s.put_pixel(px, y, Rgb([20, 20, 20]));
                }
            }
        }
        for &x in dots {
            for px in x..x + 4 {
                for y in 32..36 {
                    s.put_pixel(px, y, Rgb([20, 20, 20]));
                }
            }
        }
        s
    }

    fn glyphs(read: &[(&str, u32)]) -> Vec<Glyph> {
        read.iter()
            .map(|&(c, x)| Glyph {
                text: c.into(),
                first: (x / 4) as usize,
                last: (x / 4) as usize,
                p: 0.9,
            })
            .collect()
    }

    fn text(g: &[Glyph]) -> String {
        g.iter().map(|g| g.text.as_str()).collect()
    }

    #[test]
    fn a_leader_read_short_gets_all_its_dots() {
        // "AB" then 8 dots 12 px apart (the letters' pitch), then "CD".
        let dots: Vec<u32> = (0..8).map(|i| 30 + 12 * i).collect();
        let s = strip(&[0, 12, 130, 142], &dots);
        let g = glyphs(&[
            ("A", 5),
            ("B", 17),
            (".", 32),
            (" ", 80),
            (".", 92),
            ("C", 135),
            ("D", 147),
        ]);
        assert_eq!(text(&restore(g, &Ink::of(&s), 4.0)), "AB........CD");
    }

    #[test]
    fn single_stops_and_ellipses_stay_as_read() {
        // A decimal point between digits, and an ellipsis read in full.
        let s = strip(&[0, 12, 30, 42], &[24]);
        let g = glyphs(&[("1", 5), ("2", 17), (".", 25), ("3", 35), ("4", 47)]);
        assert_eq!(text(&restore(g, &Ink::of(&s), 4.0)), "12.34");
        let s = strip(&[0, 12], &[26, 34, 42]);
        let g = glyphs(&[("A", 5), ("B", 17), (".", 27), (".", 35), (".", 43)]);
        assert_eq!(text(&restore(g, &Ink::of(&s), 4.0)), "AB...");
    }

    #[test]
    fn dots_far_apart_are_not_a_leader() {
        // Dots three pitches apart: separate full stops, not one row.
        let s = strip(&[0, 12, 200, 212], &[30, 66, 102]);
        let g = glyphs(&[("A", 5), ("B", 17), (".", 32), ("C", 205), ("D", 217)]);
        assert_eq!(text(&restore(g, &Ink::of(&s), 4.0)), "AB.CD");
    }
}
