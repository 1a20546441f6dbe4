//! Line-angle classification: is a cropped line upright (0°) or upside down (180°)?

use image::RgbImage;

use super::models::{as_f32, Model};
use super::preprocess::{resize, strip_width, to_tensor, Norm};
use super::OcrError;

const H: usize = 48;
const W: usize = 192;

/// Windows classified per line, at most.
const WINDOWS: u32 = 3;

/// The exact tensors the classifier is fed for `line`: one per window.
///
/// The classifier sees 192×48: a long line squeezed into that is unreadable, and the reference
/// misjudges such lines. Long lines are instead cut into up to three windows of the classifier's
/// own aspect ratio, spread evenly along the line.
pub(super) fn inputs(line: &RgbImage) -> Vec<Vec<f32>> {
    let (w, h) = line.dimensions();
    let win = h.max(1) * (W / H) as u32;
    if w <= win + win / 2 {
        return vec![input(line)];
    }
    let n = (w / win).clamp(2, WINDOWS);
    (0..n)
        .map(|i| {
            let x = (w - win) * i / (n - 1);
            input(&image::imageops::crop_imm(line, x, 0, win, h).to_image())
        })
        .collect()
}

/// One window: height 48 at its aspect ratio (at most 192 wide), padded right with zeros.
fn input(view: &RgbImage) -> Vec<f32> {
    let (w, h) = view.dimensions();
    let rw = strip_width(w, h, H, W);
    let resized = resize(view, rw as u32, H as u32);
    to_tensor(&resized, H, W, Norm::SYMMETRIC, [0.0; 3])
}

/// The input shape of every window.
pub(super) const SHAPE: [usize; 4] = [1, 3, H, W];

/// Probability that the line is upside down: the mean over its windows.
pub fn upside_down(model: &Model, line: &RgbImage) -> Result<f32, OcrError> {
    let windows = inputs(line);
    let n = windows.len();
    let mut sum = 0.0;
    for data in windows {
        let out = model.run(SHAPE, data)?;
        sum += as_f32(&out, "cls")?
            .get(1)
            .copied()
            .ok_or_else(|| OcrError::Model("cls output has no 180° class".into()))?;
    }
    Ok(sum / n as f32)
}
