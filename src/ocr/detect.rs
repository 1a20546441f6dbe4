//! Text detection: DB (differentiable binarisation) probability map → text boxes.

use image::RgbImage;

use super::geometry::{self, in_convex_quad, min_area_rect, order_corners, Quad};
use super::models::{as_f32, Detector, Model};
use super::preprocess::{mean_border, resize, to_tensor, Norm};
use super::OcrError;

/// Detection settings.
#[derive(Debug, Clone, Copy)]
pub struct DetParams {
    /// The longer side is scaled down to at most this many pixels.
    pub limit_side: u32,
    /// Probability above which a pixel is text.
    pub thresh: f32,
    /// Mean probability inside a box below which the box is dropped.
    pub box_thresh: f32,
    /// How far boxes are grown back out (the model predicts shrunk text kernels).
    pub unclip_ratio: f32,
    pub max_candidates: usize,
}

impl DetParams {
    /// The settings of each detector's `inference.yml` (models/det-*.yml): DB threshold 0.2,
    /// box score 0.4 (tiny) or 0.45 (small), unclip ratio 1.4, up to 3000 candidates.
    pub fn of(detector: Detector) -> DetParams {
        DetParams {
            limit_side: 960,
            thresh: 0.2,
            box_thresh: match detector {
                Detector::Tiny => 0.4,
                Detector::Small => 0.45,
            },
            unclip_ratio: 1.4,
            max_candidates: 3000,
        }
    }
}

/// Input sides are padded up to one of these. Run time grows with the area (`cargo bench
/// --bench shapes -- det`: ~60 ms at 512×512, ~290 ms at 960×960 on one busy core), so padding
/// costs in proportion; steps of 128 waste at most 64 px per side on average while bounding
/// the distinct plans to 8×8 (each ~100 ms to build and 10–40 MiB to keep; the cache holds
/// 16). Steps of 64 would halve the padding but allow 225 shapes, and mixed traffic would then
/// spend its time rebuilding evicted plans. The last step is the 960 limit itself.
const BUCKETS: [usize; 8] = [128, 256, 384, 512, 640, 768, 896, 960];

fn bucket(n: usize) -> usize {
    BUCKETS
        .iter()
        .copied()
        .find(|&b| b >= n)
        .unwrap_or(n.div_ceil(32) * 32)
}

/// The network's input size for an image: the longer side limited, both sides multiples of 32
/// (the reference's rounding, which may change the aspect ratio slightly).
pub fn input_size(w: u32, h: u32, limit: u32) -> (u32, u32) {
    let long = w.max(h);
    let ratio = if long > limit {
        limit as f32 / long as f32
    } else {
        1.0
    };
    let round32 = |v: f32| (((v as u32) as f32 / 32.0).round() as u32 * 32).max(32);
    (round32(w as f32 * ratio), round32(h as f32 * ratio))
}

/// The exact tensor the detector is fed for an image, and where the image sits in it.
pub(super) struct Input {
    pub shape: [usize; 4],
    pub data: Vec<f32>,
    /// The resized (margined) image's size inside the bucket-padded tensor.
    pub content: (usize, usize),
    /// The margin added around the source image, in source pixels.
    pub margin: u32,
    /// The margined image's size, in source pixels.
    pub padded: (u32, u32),
}

/// Margin, resize (longer side within `p.limit_side`, sides multiples of 32), pad up to the
/// bucket with the border colour, normalise.
pub(super) fn input(img: &RgbImage, p: &DetParams) -> Input {
    // Text touching the edge is missed or clipped by DB (its kernels need context on both
    // sides), so the image gets a margin of its own border colour first.
    let margin = margin(img.width(), img.height());
    let padded = pad(img, margin);
    let (rw, rh) = input_size(padded.width(), padded.height(), p.limit_side);
    let resized = resize(&padded, rw, rh);
    let (bw, bh) = (bucket(rw as usize), bucket(rh as usize));
    let data = to_tensor(&resized, bh, bw, Norm::DET, border_color(&resized));
    Input {
        shape: [1, 3, bh, bw],
        data,
        content: (rw as usize, rh as usize),
        margin,
        padded: padded.dimensions(),
    }
}

/// Finds text boxes in `img`; corners are in `img`'s pixel coordinates.
pub fn detect(model: &Model, img: &RgbImage, p: &DetParams) -> Result<Vec<Quad>, OcrError> {
    let Input {
        shape,
        data,
        content: (w, h),
        margin,
        padded: (pw, ph),
    } = input(img, p);
    let out = model.run(shape, data)?;
    let map = as_f32(&out, "det")?;
    // Keep only the part of the map that covers the image, not the bucket padding.
    let bw = shape[3];
    let mut pred = Vec::with_capacity(w * h);
    for y in 0..h {
        pred.extend_from_slice(&map[y * bw..y * bw + w]);
    }
    let quads = boxes_from_map(&pred, w, h, pw, ph, p);
    let (max_x, max_y) = ((img.width() - 1) as f32, (img.height() - 1) as f32);
    let m = margin as f32;
    Ok(quads
        .into_iter()
        .filter_map(|q| {
            let whole = q.map(|[x, y]| [x - m, y - m]);
            let inside = whole.map(|[x, y]| [x.clamp(0.0, max_x), y.clamp(0.0, max_y)]);
            (thickness(&inside) >= MIN_INSIDE * thickness(&whole)).then_some(inside)
        })
        .filter(|q| geometry::dist(q[0], q[1]) > 3.0 && geometry::dist(q[0], q[3]) > 3.0)
        .collect())
}

/// The part of a box's thickness (across its text) that must lie inside the image. A box
/// mostly in the margin around the image is the cut edge of a line outside it (a receipt
/// segment's top, holding the descenders of the line above: 4 of its 13 px inside, read
/// `11111`), not text; a line touching the edges of a tight crop keeps most of its box.
const MIN_INSIDE: f32 = 0.5;

/// A quad's shorter mean side.
fn thickness(q: &Quad) -> f32 {
    let along = (geometry::dist(q[0], q[1]) + geometry::dist(q[3], q[2])) / 2.0;
    let across = (geometry::dist(q[0], q[3]) + geometry::dist(q[1], q[2])) / 2.0;
    along.min(across)
}

/// A quarter of the shorter side, within 8..=16 px (tuned on rendered-dev lines: more margin
/// than that changes how DB splits long lines).
fn margin(w: u32, h: u32) -> u32 {
    (w.min(h) / 4).clamp(8, 16)
}

/// Pads by replicating the edge pixels: a flat colour would draw a rectangle's edge around the
/// image, which the detector takes for part of a text region.
fn pad(img: &RgbImage, m: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(w + 2 * m, h + 2 * m, |x, y| {
        let sx = x.saturating_sub(m).min(w - 1);
        let sy = y.saturating_sub(m).min(h - 1);
        *img.get_pixel(sx, sy)
    })
}

/// [`mean_border`], normalised: bucket padding that looks like background.
fn border_color(img: &RgbImage) -> [f32; 3] {
    let [r, g, b] = mean_border(img);
    [
        Norm::DET.apply(0, b),
        Norm::DET.apply(1, g),
        Norm::DET.apply(2, r),
    ]
}

/// DB post-processing: binarise, regions, min-area rectangle, score, unclip, rescale, clip.
pub fn boxes_from_map(
    pred: &[f32],
    w: usize,
    h: usize,
    dest_w: u32,
    dest_h: u32,
    p: &DetParams,
) -> Vec<Quad> {
    const MIN_SIZE: f32 = 3.0;
    let mask: Vec<bool> = pred.iter().map(|&v| v > p.thresh).collect();
    let mut out = Vec::new();
    for region in geometry::regions(&mask, w, h)
        .into_iter()
        .take(p.max_candidates)
    {
        let rect = min_area_rect(&region);
        if rect.short_side() < MIN_SIZE {
            continue;
        }
        if box_score(pred, w, h, &rect.corners()) < p.box_thresh {
            continue;
        }
        let grown = rect.grown(geometry::unclip_distance(&rect, p.unclip_ratio));
        if grown.short_side() < MIN_SIZE + 2.0 {
            continue;
        }
        let (sx, sy) = (dest_w as f32 / w as f32, dest_h as f32 / h as f32);
        let (max_x, max_y) = ((dest_w - 1) as f32, (dest_h - 1) as f32);
        let q = order_corners(grown.corners().map(|[x, y]| {
            [
                (x * sx).round().clamp(0.0, max_x),
                (y * sy).round().clamp(0.0, max_y),
            ]
        }));
        let width = geometry::dist(q[0], q[1]) as u32;
        let height = geometry::dist(q[0], q[3]) as u32;
        if width <= 3 || height <= 3 {
            continue;
        }
        out.push(q);
    }
    out
}

/// Mean probability over the pixels inside the box (the reference's "fast" score).
fn box_score(pred: &[f32], w: usize, h: usize, q: &Quad) -> f32 {
    let xs = q.iter().map(|p| p[0]);
    let ys = q.iter().map(|p| p[1]);
    let clampi = |v: f32, hi: usize| (v.max(0.0) as usize).min(hi - 1);
    let x0 = clampi(xs.clone().fold(f32::MAX, f32::min).floor(), w);
    let x1 = clampi(xs.fold(f32::MIN, f32::max).ceil(), w);
    let y0 = clampi(ys.clone().fold(f32::MAX, f32::min).floor(), h);
    let y1 = clampi(ys.fold(f32::MIN, f32::max).ceil(), h);
    let (mut sum, mut n) = (0.0f32, 0u32);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if in_convex_quad(q, [x as f32, y as f32]) {
                sum += pred[y * w + x];
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_size_matches_reference_rounding() {
        assert_eq!(input_size(1920, 1080, 960), (960, 544));
        assert_eq!(input_size(600, 40, 960), (608, 32));
        assert_eq!(input_size(10, 10, 960), (32, 32));
    }

    #[test]
    fn buckets_cover_every_input() {
        for n in (32..=960).step_by(32) {
            let b = bucket(n);
            assert!(b >= n && BUCKETS.contains(&b));
        }
    }

    #[test]
    fn one_blob_becomes_one_grown_box() {
        // A 40×8 block of high probability in a 64×32 map, scaled 2× to the source.
        let (w, h) = (64, 32);
        let mut pred = vec![0.0f32; w * h];
        for y in 12..20 {
            for x in 10..50 {
                pred[y * w + x] = 0.9;
            }
        }
        let boxes = boxes_from_map(&pred, w, h, 128, 64, &DetParams::of(Detector::Tiny));
        assert_eq!(boxes.len(), 1);
        let q = boxes[0];
        // Region spans x 10..49, y 12..19 (pixel centres): 39×7. Unclip d = 273×1.6/92 ≈ 4.75.
        let d = 39.0 * 7.0 * 1.6 / 92.0;
        assert!(
            (q[0][0] - ((10.0 - d) * 2.0f32).round()).abs() <= 1.0,
            "{q:?}"
        );
        assert!(
            (q[2][1] - ((19.0 + d) * 2.0f32).round()).abs() <= 1.0,
            "{q:?}"
        );
    }

    #[test]
    fn faint_and_tiny_blobs_are_dropped() {
        let (w, h) = (64, 32);
        let mut pred = vec![0.0f32; w * h];
        for y in 5..15 {
            for x in 5..40 {
                pred[y * w + x] = 0.35; // above thresh, below box_thresh
            }
        }
        pred[25 * w + 50] = 0.99; // a single pixel
        assert!(boxes_from_map(&pred, w, h, 64, 32, &DetParams::of(Detector::Tiny)).is_empty());
    }
}
