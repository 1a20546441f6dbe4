//! Pixel plumbing shared by the stages: resizing and HWC-RGB → padded NCHW-BGR tensors.

use image::{imageops, Rgb, RgbImage};

/// Resizes to exactly `w`×`h`. Bilinear with antialiasing when shrinking (the reference's plain
/// bilinear aliases thin strokes on large downscales).
pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    imageops::resize(img, w.max(1), h.max(1), imageops::FilterType::Triangle)
}

/// Per-channel normalisation `(x/255 - mean) / std`, channels given in B, G, R order: the
/// PaddleOCR models were trained on OpenCV's BGR images.
#[derive(Debug, Clone, Copy)]
pub struct Norm {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Norm {
    /// Detection (ImageNet statistics, applied to B, G, R as the reference does).
    pub const DET: Norm = Norm {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// Classifier and recogniser: maps 0..255 to -1..1.
    pub const SYMMETRIC: Norm = Norm {
        mean: [0.5, 0.5, 0.5],
        std: [0.5, 0.5, 0.5],
    };

    /// Normalises value `v` of BGR channel `c`.
    pub fn apply(&self, c: usize, v: u8) -> f32 {
        (f32::from(v) / 255.0 - self.mean[c]) / self.std[c]
    }
}

/// Writes `img` into the top-left of a `1×3×bh×bw` BGR tensor whose padding holds `pad`
/// (already normalised, per BGR channel).
pub fn to_tensor(img: &RgbImage, bh: usize, bw: usize, norm: Norm, pad: [f32; 3]) -> Vec<f32> {
    let plane = bh * bw;
    let mut out = vec![0.0f32; 3 * plane];
    for (c, p) in pad.iter().enumerate() {
        out[c * plane..(c + 1) * plane].fill(*p);
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    for y in 0..h.min(bh) {
        for x in 0..w.min(bw) {
            let Rgb([r, g, b]) = *img.get_pixel(x as u32, y as u32);
            let i = y * bw + x;
            out[i] = norm.apply(0, b);
            out[plane + i] = norm.apply(1, g);
            out[2 * plane + i] = norm.apply(2, r);
        }
    }
    out
}

/// Rotates 180°.
pub fn rotate180(img: &RgbImage) -> RgbImage {
    imageops::rotate180(img)
}

/// The model inputs the pipeline builds from a decoded page, without running any model: the
/// detector's (resized to [`super::detect::input_size`], padded to a multiple of 32) and the
/// recogniser's and classifier's height-48 strips of the whole image (what the engine reads
/// when detection finds nothing), plus the 180° turn. Returns the `[n, c, h, w]` of each tensor
/// after checking its length and values. Exists for the `decode` fuzz target (`fuzz/`), which
/// feeds it every image the decoder accepts; strip sizes come from the recogniser's and
/// classifier's own constants.
#[doc(hidden)]
pub fn model_inputs(img: &RgbImage) -> Vec<[usize; 4]> {
    use super::{classify, recognize};
    let (w, h) = img.dimensions();
    let mut shapes = Vec::new();
    let mut check = |t: Vec<f32>, bh: usize, bw: usize| {
        assert_eq!(t.len(), 3 * bh * bw, "tensor length");
        assert!(t.iter().all(|v| v.is_finite()), "non-finite tensor value");
        shapes.push([1, 3, bh, bw]);
    };

    let limit = super::detect::DetParams::default().limit_side;
    let (rw, rh) = super::detect::input_size(w, h, limit);
    assert!(
        rw >= 32 && rh >= 32 && rw % 32 == 0 && rh % 32 == 0,
        "det size {rw}x{rh}"
    );
    assert!(
        rw.max(rh) <= limit.div_ceil(32) * 32 + 32,
        "det size {rw}x{rh} over {limit}"
    );
    let resized = resize(img, rw, rh);
    assert_eq!(resized.dimensions(), (rw, rh));
    let (bw, bh) = (rw as usize, rh as usize);
    check(to_tensor(&resized, bh, bw, Norm::DET, [0.0; 3]), bh, bw);

    let widest = recognize::BUCKETS[recognize::BUCKETS.len() - 1];
    for (sh, max_w) in [(recognize::H, widest), (classify::H, classify::W)] {
        let want = (sh as f32 * w as f32 / h.max(1) as f32).ceil() as usize;
        let sw = want.clamp(1, max_w);
        let strip = resize(&rotate180(img), sw as u32, sh as u32);
        assert_eq!(strip.dimensions(), (sw as u32, sh as u32));
        check(
            to_tensor(&strip, sh, max_w, Norm::SYMMETRIC, [0.0; 3]),
            sh,
            max_w,
        );
    }
    shapes
}
