//! Cutting a text box out of the page as an upright, axis-aligned strip.

use image::{Rgb, RgbImage};

use super::geometry::{dist, Homography, Quad};

/// Warps the quad (top-left, top-right, bottom-right, bottom-left) to a rectangle of its own
/// size; strips at least 1.5× taller than wide are turned 90° counter-clockwise so vertical
/// text lies along the recogniser's axis (as the reference does).
pub fn crop_quad(img: &RgbImage, q: &Quad) -> RgbImage {
    let w = dist(q[0], q[1]).max(dist(q[2], q[3])).max(1.0) as u32;
    let h = dist(q[0], q[3]).max(dist(q[1], q[2])).max(1.0) as u32;
    let (wf, hf) = (w as f32, h as f32);
    let rect = [[0.0, 0.0], [wf, 0.0], [wf, hf], [0.0, hf]];
    let Some(map) = Homography::from_points(&rect, q) else {
        return RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    };
    let mut out = RgbImage::new(w, h);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let [sx, sy] = map.apply([x as f32, y as f32]);
        *px = sample(img, sx, sy);
    }
    if h as f32 >= 1.5 * w as f32 {
        image::imageops::rotate270(&out)
    } else {
        out
    }
}

/// Bilinear sample with edge replication.
fn sample(img: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (fx, fy) = (x.floor(), y.floor());
    let (ax, ay) = (x - fx, y - fy);
    let at = |xi: i64, yi: i64| img.get_pixel(xi.clamp(0, w - 1) as u32, yi.clamp(0, h - 1) as u32);
    let (x0, y0) = (fx as i64, fy as i64);
    let (p00, p10, p01, p11) = (
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    );
    let mut out = [0u8; 3];
    for c in 0..3 {
        let top = f32::from(p00[c]) * (1.0 - ax) + f32::from(p10[c]) * ax;
        let bot = f32::from(p01[c]) * (1.0 - ax) + f32::from(p11[c]) * ax;
        out[c] = (top * (1.0 - ay) + bot * ay).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_aligned_crop_copies_pixels() {
        let img = RgbImage::from_fn(20, 10, |x, y| Rgb([x as u8, y as u8, 0]));
        let c = crop_quad(&img, &[[5.0, 2.0], [15.0, 2.0], [15.0, 6.0], [5.0, 6.0]]);
        assert_eq!(c.dimensions(), (10, 4));
        assert_eq!(c.get_pixel(0, 0).0, [5, 2, 0]);
        assert_eq!(c.get_pixel(9, 3).0, [14, 5, 0]);
    }

    #[test]
    fn tilted_quad_is_straightened() {
        // The quad is the image's right half turned 90°: its top edge runs down the image.
        let img = RgbImage::from_fn(8, 8, |x, y| Rgb([x as u8 * 10, y as u8 * 10, 0]));
        let c = crop_quad(&img, &[[7.0, 0.0], [7.0, 7.0], [4.0, 7.0], [4.0, 0.0]]);
        assert_eq!(c.dimensions(), (7, 3));
        assert_eq!(c.get_pixel(0, 0).0, [70, 0, 0]);
        assert_eq!(c.get_pixel(6, 0).0, [70, 60, 0]);
        assert_eq!(c.get_pixel(0, 2).0, [50, 0, 0]);
    }

    #[test]
    fn tall_strips_are_turned() {
        let img = RgbImage::from_fn(10, 40, |_, y| Rgb([y as u8, 0, 0]));
        let c = crop_quad(&img, &[[0.0, 0.0], [10.0, 0.0], [10.0, 40.0], [0.0, 40.0]]);
        assert_eq!(c.dimensions(), (40, 10));
        // Counter-clockwise: the top of the strip ends up on the left.
        assert_eq!(c.get_pixel(0, 0).0[0], 0);
        assert_eq!(c.get_pixel(39, 0).0[0], 39);
    }
}
