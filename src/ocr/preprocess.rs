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

/// The mean colour of the image's border.
pub fn mean_border(img: &RgbImage) -> [u8; 3] {
    let (w, h) = img.dimensions();
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    for (x, y, px) in img.enumerate_pixels() {
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            for c in 0..3 {
                sum[c] += u64::from(px[c]);
            }
            n += 1;
        }
    }
    sum.map(|s| (s / n.max(1)) as u8)
}

/// Rotates 180°.
pub fn rotate180(img: &RgbImage) -> RgbImage {
    imageops::rotate180(img)
}

/// The width of a height-`height` strip of a `w`×`h` line at its own aspect ratio, within
/// 1..=`max` (wider lines are squeezed).
pub fn strip_width(w: u32, h: u32, height: usize, max: usize) -> usize {
    ((height as f32 * w as f32 / h.max(1) as f32).ceil() as usize).clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_keep_the_aspect_within_bounds() {
        assert_eq!(strip_width(200, 50, 48, 3200), 192);
        assert_eq!(strip_width(100_000, 10, 48, 3200), 3200);
        assert_eq!(strip_width(0, 0, 48, 3200), 1);
    }

    #[test]
    fn tensors_are_bgr_planes_with_padding() {
        let img = RgbImage::from_pixel(2, 1, Rgb([255, 0, 0]));
        let t = to_tensor(&img, 1, 3, Norm::SYMMETRIC, [9.0; 3]);
        // B plane, G plane, R plane; the third column is padding.
        assert_eq!(t, vec![-1.0, -1.0, 9.0, -1.0, -1.0, 9.0, 1.0, 1.0, 9.0]);
    }
}
