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

/// A line up to this much wider than a bucket of at least [`SQUEEZE_FROM`] px is squeezed into
/// it rather than padded to the next (a 1150 px strip is read at 960 instead of in 1280 with
/// 130 px of padding). Wide buckets are 20–33 % apart, so their padding was the largest part of
/// the 1.22× that strips are padded on pages. On the 23 pages `bench-speed.sh` times, with
/// 20 % from 640 px: bucket widths summed 389,408 → 359,200 px, recognition (one thread, two
/// interleaved rounds, sum over the pages) 62.3 / 59.6 → 58.3 / 56.6 s, median page 3.42 /
/// 3.32 → 3.34 / 3.24 s. `scripts/eval-all.sh`: rendered lines 0.18 → 0.14 %, multilingual
/// lines 0.09 → 0.04 %, receipt lines 2.81 → 2.84 %, the rest equal. Squeezing narrower lines
/// too (from 480 px) cost receipt pages 4.45 → 4.65 %; 10 % from 640 px saved half as much.
const MAX_SQUEEZE: f32 = 1.2;

/// The narrowest bucket a line is squeezed into ([`MAX_SQUEEZE`]).
const SQUEEZE_FROM: usize = 640;

/// A strip narrower than [`SQUEEZE_FROM`] whose plan is at most this much wider than itself is
/// stretched to fill the plan instead of being padded: the recogniser reads characters a little
/// wider better than a strip beside blank padding (its squeeze-excitation layers average over
/// the whole width). Same plans, so the same time. `scripts/eval-all.sh` against padding (CER
/// %, rendered lines / multilingual lines / receipt lines / receipt pages / digit captchas /
/// Amazon captchas; the page sets of print unchanged): padded 0.14 / 0.04 / 2.84 / 4.45 / 3.11 /
/// 0.67; every plan filled up to 1.25× 0.11 / 0.07 / 2.67 / 4.35 / 3.11 / 0.33, 1.35× 0.11 /
/// 0.07 / 2.67 / 4.33 / 2.89 / 0.22, 1.5× and 2× 0.11 / 0.07 / 2.70 / 4.44 / 3.00 / 0.22; plans
/// under 640 filled up to 1.35× (kept) 0.14 / 0.04 / 2.74 / 4.39 / 2.89 / 0.22. Filling the
/// wide plans too lost a receipt's `CASH.................... RM` (its twenty dots each read less
/// surely when wider: the line read alone 0.80 → 0.57 sure, under the engine's drop score). The
/// captchas read with their true hints are unchanged (90.0 / 100 % exact).
const MAX_FILL: f32 = 1.35;

/// The strip width of `line` at height [`H`] (widened for a length hint, squeezed into a wide
/// bucket it just overflows, or stretched to fill its bucket), and the bucket (plan width) it
/// is padded to.
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
    let at = BUCKETS.partition_point(|&b| b < rw);
    let bucket = BUCKETS.get(at).copied().unwrap_or(max);
    let below = at.checked_sub(1).map(|i| BUCKETS[i]);
    match below {
        // A length hint wants room per character: its lines are never squeezed.
        Some(b)
            if hints.min_len.is_none()
                && b >= SQUEEZE_FROM
                && rw as f32 <= b as f32 * MAX_SQUEEZE =>
        {
            (b, b)
        }
        _ if bucket < SQUEEZE_FROM && bucket as f32 <= rw as f32 * MAX_FILL => (bucket, bucket),
        _ => (rw, bucket),
    }
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
        // 100×40 at height 48: 120 px, filling its plan of 160.
        let line = RgbImage::from_pixel(100, 40, Rgb([255, 255, 255]));
        assert_eq!(widths(&line, &Hints::none()), (160, 160));
        // Six characters: 40 px each.
        assert_eq!(widths(&line, &hinted(6)), (240, 240));
        // A line already wide enough for two characters is left as it is (then fills 160).
        assert_eq!(widths(&line, &hinted(2)), (160, 160));
        // An outsized length stretches no more than 3× (360 px, then filling 480).
        assert_eq!(widths(&line, &hinted(1000)), (480, 480));
    }

    #[test]
    fn narrow_strips_fill_their_plan_wide_ones_squeeze_into_theirs() {
        let at_48 = |w: u32| RgbImage::from_pixel(w, 48, Rgb([255, 255, 255]));
        let none = Hints::none();
        // 120 px: stretched to fill 160 (1.33×).
        assert_eq!(widths(&at_48(120), &none), (160, 160));
        // 100 px: 160 is 1.6× as wide, so it is padded.
        assert_eq!(widths(&at_48(100), &none), (100, 160));
        // 1150 px: within 20 % of 960, squeezed into it rather than stretched to 1280.
        assert_eq!(widths(&at_48(1150), &none), (960, 960));
        // 1200 px: too far over 960, padded to 1280 (wide plans are not filled).
        assert_eq!(widths(&at_48(1200), &none), (1200, 1280));
        // 700 px: squeezed into 640, the narrowest bucket that takes it.
        assert_eq!(widths(&at_48(700), &none), (640, 640));
        // 500 px: 480 is below the squeeze's floor, and 640 is not filled: padded.
        assert_eq!(widths(&at_48(500), &none), (500, 640));
        // 200 px: stretched to fill 240.
        assert_eq!(widths(&at_48(200), &none), (240, 240));
        // Wider than the last bucket: squeezed into it, as before.
        assert_eq!(widths(&at_48(5000), &none), (3200, 3200));
        // A length hint wants room per character: never squeezed.
        assert_eq!(widths(&at_48(1150), &hinted(2)), (1150, 1280));
    }
}
