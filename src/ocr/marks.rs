//! Lone marks beside text boxes: detection misses a colon, `=` or `*` that stands apart in a
//! receipt's or a form's column (`Cashier    :   USER`), since its blots shrink below the
//! detector's smallest box. The gaps between the boxes of one visual line, and a little room
//! before its first box and after its last, are searched for small blots of ink; a box around
//! them is given back to be read like the others (the engine keeps what reads as a mark).

use image::RgbImage;

use super::geometry::Quad;
use super::ink::{Blot, Ink, Threshold};
use super::layout;

/// How far before a line's first box and after its last a mark is looked for, in text heights.
const REACH: f32 = 2.0;
/// Wider gaps are searched only this many text heights from either side: a mark belongs to
/// the text beside it.
const NEAR: f32 = 3.0;
/// Boxes steeper than this are passed over: the gaps of tilted lines are not upright strips.
const STEEPEST: f32 = 0.05;
/// A blot is part of a mark when neither side is over this share of the text height (a
/// letter or a digit is most of it)...
const MARK: f32 = 0.6;
/// ... and both are at least this many pixels (specks of scanner noise are not marks).
const SPECK: usize = 2;
/// A gap another box covers over more than this share of its height is that box's text.
const SHARED: f32 = 0.25;
/// Marks are often fainter than the text beside them (a colon's two dots, printed thin):
/// ink is what is this share of the way from the text's ink to its paper, or darker.
const FAINT: f32 = 0.7;
/// The box read around the blots reaches this share of the text height beyond them.
const MARGIN: f32 = 0.3;

/// An upright rectangle in page pixels, inclusive of `x0`, `y0`, exclusive of `x1`, `y1`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl Rect {
    fn of(q: &Quad, w: u32, h: u32) -> Rect {
        let clamp = |v: f32, max: u32| v.round().clamp(0.0, max as f32) as u32;
        let (xs, ys) = (q.map(|p| p[0]), q.map(|p| p[1]));
        Rect {
            x0: clamp(xs.iter().copied().fold(f32::MAX, f32::min), w),
            x1: clamp(xs.iter().copied().fold(f32::MIN, f32::max) + 1.0, w),
            y0: clamp(ys.iter().copied().fold(f32::MAX, f32::min), h),
            y1: clamp(ys.iter().copied().fold(f32::MIN, f32::max) + 1.0, h),
        }
    }

    fn height(&self) -> u32 {
        self.y1.saturating_sub(self.y0)
    }

    /// Whether `o` covers part of this rectangle's width over more than [`SHARED`] of its
    /// height (the boxes of neighbouring lines overlap by their margins).
    fn covered_by(&self, o: &Rect) -> bool {
        let rows = self.y1.min(o.y1).saturating_sub(self.y0.max(o.y0));
        self.x0 < o.x1 && o.x0 < self.x1 && rows as f32 > SHARED * self.height() as f32
    }

    fn crop(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = (
            self.x1.saturating_sub(self.x0),
            self.y1.saturating_sub(self.y0),
        );
        image::imageops::crop_imm(img, self.x0, self.y0, w, h).to_image()
    }

    fn quad(&self) -> Quad {
        let (x0, y0, x1, y1) = (
            self.x0 as f32,
            self.y0 as f32,
            self.x1 as f32 - 1.0,
            self.y1 as f32 - 1.0,
        );
        [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    }
}

/// The upright strip of `img` inside `q` (one of [`beside`]'s boxes), as it is: never turned,
/// however narrow.
pub fn crop(img: &RgbImage, q: &Quad) -> RgbImage {
    Rect::of(q, img.width(), img.height()).crop(img)
}

fn steep(q: &Quad) -> bool {
    let dx = q[1][0] - q[0][0];
    dx <= 1.0 || ((q[1][1] - q[0][1]) / dx).abs() > STEEPEST
}

/// Boxes, in `img`'s pixels, around the small blots of ink that stand beside the text boxes
/// `quads` on their visual lines and inside none of them.
pub fn beside(img: &RgbImage, quads: &[Quad]) -> Vec<Quad> {
    let (w, h) = img.dimensions();
    let rects: Vec<Rect> = quads.iter().map(|q| Rect::of(q, w, h)).collect();
    // A box's ink level serves up to three of its gaps: found once, when first needed.
    let mut thresholds: Vec<Option<Threshold>> = vec![None; rects.len()];
    let mut found = Vec::new();
    for line in layout::lines(quads) {
        if line.iter().any(|&i| steep(&quads[i])) {
            continue;
        }
        // (the box whose ink sets the threshold, the gap's left and right edges)
        let mut gaps: Vec<(usize, f32, f32)> = Vec::new();
        let (first, last) = (line[0], line[line.len() - 1]);
        let th = |i: usize| rects[i].height() as f32;
        gaps.push((
            first,
            rects[first].x0 as f32 - REACH * th(first),
            rects[first].x0 as f32,
        ));
        for pair in line.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (l, r) = (rects[a].x1 as f32, rects[b].x0 as f32);
            let reach = NEAR * th(a).max(th(b));
            if r - l > 2.0 * reach {
                gaps.push((a, l, l + reach));
                gaps.push((b, r - reach, r));
            } else {
                gaps.push((a, l, r));
            }
        }
        gaps.push((
            last,
            rects[last].x1 as f32,
            rects[last].x1 as f32 + REACH * th(last),
        ));
        for (by, l, r) in gaps {
            let text = rects[by];
            let gap = Rect {
                x0: l.max(0.0) as u32,
                x1: (r.max(0.0) as u32).min(w),
                y0: text.y0,
                y1: text.y1,
            };
            if gap.x1 < gap.x0 + SPECK as u32 || gap.height() < 4 {
                continue;
            }
            if rects.iter().any(|o| gap.covered_by(o)) {
                continue;
            }
            let t = *thresholds[by].get_or_insert_with(|| Threshold::faint(&text.crop(img), FAINT));
            if let Some(mark) = mark_in(img, gap, t) {
                found.push(mark.quad());
            }
        }
    }
    found
}

/// The box to read around the mark-sized blots inside `gap`, if it holds any and nothing
/// bigger: blots touching the gap's edges belong to the text beside or above it.
fn mark_in(img: &RgbImage, gap: Rect, t: Threshold) -> Option<Rect> {
    let ink = Ink::split(&gap.crop(img), t);
    let th = gap.height() as f32;
    let (gw, gh) = (ink.width, ink.height);
    let inner = |b: &Blot| b.x0 > 0 && b.y0 > 0 && b.x1 + 1 < gw && b.y1 + 1 < gh;
    let blots: Vec<Blot> = ink
        .blots()
        .into_iter()
        .filter(|b| inner(b) && b.width().max(b.height()) >= SPECK)
        .collect();
    if blots.is_empty()
        || blots
            .iter()
            .any(|b| b.width().max(b.height()) as f32 > MARK * th)
    {
        return None;
    }
    let pad = (MARGIN * th) as u32;
    let x0 = blots.iter().map(|b| b.x0).min()? as u32 + gap.x0;
    let x1 = blots.iter().map(|b| b.x1).max()? as u32 + gap.x0 + 1;
    Some(Rect {
        x0: x0.saturating_sub(pad).max(gap.x0),
        x1: (x1 + pad).min(gap.x1),
        y0: gap.y0,
        y1: gap.y1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn page() -> RgbImage {
        RgbImage::from_pixel(400, 60, Rgb([245, 245, 245]))
    }

    fn fill(img: &mut RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) {
        for y in y0..y1 {
            for x in x0..x1 {
                img.put_pixel(x, y, Rgb([20, 20, 20]));
            }
        }
    }

    fn rect(x0: f32, y0: f32, x1: f32, y1: f32) -> Quad {
        [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    }

    /// "word" as a box of letters at x 10–110, a second box at 200–300, text 20 px high.
    fn words(img: &mut RgbImage) -> Vec<Quad> {
        for x in (12..108).step_by(12) {
            fill(img, x, 22, x + 9, 38);
        }
        for x in (202..298).step_by(12) {
            fill(img, x, 22, x + 9, 38);
        }
        vec![
            rect(10.0, 18.0, 110.0, 42.0),
            rect(200.0, 18.0, 300.0, 42.0),
        ]
    }

    #[test]
    fn a_colon_between_boxes_is_found() {
        let mut img = page();
        let quads = words(&mut img);
        fill(&mut img, 150, 26, 154, 30);
        fill(&mut img, 150, 34, 154, 38);
        let marks = beside(&img, &quads);
        assert_eq!(marks.len(), 1, "{marks:?}");
        let r = Rect::of(&marks[0], 400, 60);
        assert!(r.x0 < 150 && r.x1 > 154 && r.x1 < 200, "{r:?}");
    }

    #[test]
    fn a_colon_after_the_last_box_is_found_and_blank_gaps_give_nothing() {
        let mut img = page();
        let quads = words(&mut img);
        assert!(beside(&img, &quads).is_empty());
        fill(&mut img, 320, 26, 324, 30);
        fill(&mut img, 320, 34, 324, 38);
        assert_eq!(beside(&img, &quads).len(), 1);
    }

    #[test]
    fn a_missed_word_is_not_a_mark() {
        let mut img = page();
        let quads = words(&mut img);
        // A 20 px high letter-sized blot in the gap: text detection missed, not a mark.
        fill(&mut img, 150, 20, 160, 40);
        assert!(beside(&img, &quads).is_empty());
    }
}
