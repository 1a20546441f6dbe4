//! Line recognition: a height-48 strip → characters (decoded by [`super::ctc`]).

use image::RgbImage;

use super::context;
use super::ctc::{self, Charset, Reading};
use super::hints::Hints;
use super::ink::Ink;
use super::models::{as_f32, Model, Shapes};
use super::preprocess::{resize, strip_width, to_tensor, Norm};
use super::OcrError;
use super::{leaders, spacing};

pub(super) const H: usize = 48;

/// The recogniser's plans differ only in width.
pub(super) const SHAPES: Shapes = Shapes::FreeWidth { height: H };

/// Strip widths are padded up to one of these (each is one tract plan: ~50–90 ms to build
/// from the width-free graph, ~20–25 MiB to keep). Run time is about linear in width
/// (`cargo bench --bench shapes -- rec`: 23 ms at 160, 34 at 240, 48 at 320, 82 at 640). Half
/// of the lines found on the dev pages are at most 184 px wide at height 48 (947 lines, 23
/// pages), so padding them to the reference's 320 spent most of their time on padding: 160 and
/// 240 cut the modelled recognition time per page line by 19 % (68 → 55 ms). Accuracy with
/// them against without (`scripts/eval-all.sh`): SROIE lines 3.23 vs 3.20 %, SROIE pages 5.86
/// vs 5.89 %, digit captchas 3.44 vs 3.11 %, Amazon captchas 0.67 vs 0.78 %, the rest equal.
/// Steps of 80 px above 320 would save ~3 % more for twice the plans. Wider lines are squeezed
/// into the last bucket.
pub(super) const BUCKETS: [usize; 12] = [
    160, 240, 320, 480, 640, 800, 960, 1280, 1600, 2048, 2560, 3200,
];

/// The exact tensor the recogniser is fed for `line`, and the strip it was made from (word-space
/// restoration reads its columns).
pub(super) struct Input {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
    pub strip: RgbImage,
}

/// Strip pixels (at height [`H`]) given to each character a client's `min_len` says the line
/// holds: a narrower strip is stretched to this. Characters squeezed closer than this get too
/// few of the recogniser's time steps and merge or swap (`J` read as `U`). Measured with the
/// captcha dev sets' true hints (`ocrbox eval … --min-len 6 --max-len 6`, exact match, digits /
/// Amazon): no stretch 89.3 / 96.7 %; 32 px 90.0 / 97.3; 36–44 px 88.7–90.0 / 100; 48 px 87.3 /
/// 99.3; 64 px 84.7 / 98.7. Both sets come at ~20–23 px per character (the digits' detected
/// boxes, the Amazon images whole), so 40 px about doubles their width. Stretching every line
/// instead (no hints, 1.25×) hurt receipt lines (SROIE 3.02 → 3.23 %).
const HINTED_CHAR_WIDTH: usize = 40;

/// A hinted line is stretched to at most this many times its own width: the captchas above
/// needed ~2×, and a `min_len` far beyond what the image holds should not turn every line of a
/// page into a 3200 px strip (a recogniser run ~10× as long as a 320 px one).
const HINTED_MAX_STRETCH: usize = 3;

/// The strip width of `line` at height [`H`] (widened for a length hint), and the bucket (plan
/// width) it is padded to.
fn widths(line: &RgbImage, hints: &Hints) -> (usize, usize) {
    let (w, h) = line.dimensions();
    let max = BUCKETS[BUCKETS.len() - 1];
    let natural = strip_width(w, h, H, max);
    let least = hints
        .min_len
        .unwrap_or(0)
        .saturating_mul(HINTED_CHAR_WIDTH)
        .min(natural * HINTED_MAX_STRETCH);
    let rw = natural.max(least.min(max));
    (
        rw,
        BUCKETS.iter().copied().find(|&b| b >= rw).unwrap_or(max),
    )
}

/// The plan width `line` is read at: lines read in this order reuse each plan while it is
/// cached (see `engine`).
pub(super) fn bucket(line: &RgbImage, hints: &Hints) -> usize {
    widths(line, hints).1
}

/// The line resized to height [`H`] at its aspect ratio (or wider, for a length hint), padded
/// right to its width bucket.
pub(super) fn input(line: &RgbImage, hints: &Hints) -> Input {
    let (rw, bw) = widths(line, hints);
    let strip = resize(line, rw as u32, H as u32);
    let data = to_tensor(&strip, H, bw, Norm::SYMMETRIC, [0.0; 3]);
    Input {
        shape: [1, 3, H, bw],
        data,
        strip,
    }
}

/// What one model run on a line gives.
pub struct Read {
    /// The line read on its own.
    pub reading: Reading,
    /// When `reading` has characters of a non-Latin script: the line read as part of a page
    /// in Latin script (the same step probabilities decoded with the Latin mask), which the
    /// engine takes if the page turns out to be Latin. Decoding twice costs microseconds where
    /// running the model again cost a page 2–7 % of its recognition time.
    pub as_latin: Option<Reading>,
}

/// Reads one line: strip → model → CTC (obeying `hints`) → letters/digits by their word →
/// word spaces → dot leaders.
pub fn recognize(
    model: &Model,
    charset: &Charset,
    line: &RgbImage,
    hints: &Hints,
) -> Result<Read, OcrError> {
    let Input { shape, data, strip } = input(line, hints);
    let out = model.run(shape, data)?;
    let probs = as_f32(&out, "rec")?;
    let classes = *out.shape().last().unwrap_or(&0);
    if classes != charset.len() {
        return Err(OcrError::Model(format!(
            "rec output has {classes} classes, dictionary {}",
            charset.len()
        )));
    }
    let steps = probs.len() / classes;
    let space = charset.space();
    let space_p = |a: usize, b: usize| {
        (a..=b.min(steps.saturating_sub(1)))
            .map(|t| probs[t * classes + space])
            .fold(0.0, f32::max)
    };
    let step = shape[3] as f32 / steps.max(1) as f32;
    // Both readings and both passes that add characters from the ink measure the same strip.
    let ink = hints.free_length().then(|| Ink::of(&strip));
    let read = |latin: bool| {
        let mut glyphs = ctc::decode(probs, classes, charset, latin, hints);
        context::by_word(&mut glyphs, probs, classes, charset, |c| hints.allows(c));
        if let Some(ink) = &ink {
            if hints.respace(space) {
                glyphs = spacing::respace(glyphs, ink, step, space_p);
            }
            glyphs = leaders::restore(glyphs, ink, step);
        }
        ctc::join(&glyphs)
    };
    let reading = read(false);
    let as_latin = (reading.script_counts().0 > 0).then(|| read(true));
    Ok(Read { reading, as_latin })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocr::hints::HintSpec;
    use image::Rgb;

    fn hinted(min_len: usize) -> Hints {
        let spec = HintSpec {
            min_len: Some(min_len),
            ..HintSpec::default()
        };
        let charset = Charset::new("a\nb");
        Hints::compile(&spec, &charset).unwrap()
    }

    #[test]
    fn a_length_hint_widens_squeezed_lines_within_bounds() {
        // 100×40 at height 48: 120 px.
        let line = RgbImage::from_pixel(100, 40, Rgb([255, 255, 255]));
        assert_eq!(widths(&line, &Hints::none()), (120, 160));
        // Six characters: 40 px each.
        assert_eq!(widths(&line, &hinted(6)), (240, 240));
        // A line already wide enough for two characters is left as it is.
        assert_eq!(widths(&line, &hinted(2)), (120, 160));
        // An outsized length stretches no more than 3×.
        assert_eq!(widths(&line, &hinted(1000)), (360, 480));
    }
}
