//! Line-angle classification: is a cropped line upright (0°) or upside down (180°)?

use image::RgbImage;

use super::models::{as_f32, Model};
use super::preprocess::{resize, to_tensor, Norm};
use super::OcrError;

pub(super) const H: usize = 48;
pub(super) const W: usize = 192;

/// Windows classified per line, at most.
const WINDOWS: u32 = 3;

/// Probability that the line is upside down.
///
/// The classifier sees 192×48: a long line squeezed into that is unreadable, and the reference
/// misjudges such lines. Long lines are instead cut into up to three windows of the classifier's
/// own aspect ratio, spread evenly along the line, and their probabilities averaged.
pub fn upside_down(model: &Model, line: &RgbImage) -> Result<f32, OcrError> {
    let (w, h) = line.dimensions();
    let win = h.max(1) * (W / H) as u32;
    if w <= win + win / 2 {
        return classify(model, line);
    }
    let n = (w / win).clamp(2, WINDOWS);
    let mut sum = 0.0;
    for i in 0..n {
        let x = (w - win) * i / (n - 1);
        let view = image::imageops::crop_imm(line, x, 0, win, h).to_image();
        sum += classify(model, &view)?;
    }
    Ok(sum / n as f32)
}

fn classify(model: &Model, line: &RgbImage) -> Result<f32, OcrError> {
    let (w, h) = line.dimensions();
    let rw = ((H as f32 * w as f32 / h.max(1) as f32).ceil() as usize).clamp(1, W);
    let resized = resize(line, rw as u32, H as u32);
    let input = to_tensor(&resized, H, W, Norm::SYMMETRIC, [0.0; 3]);
    let out = model.run([1, 3, H, W], input)?;
    let probs = as_f32(&out, "cls")?;
    probs
        .get(1)
        .copied()
        .ok_or_else(|| OcrError::Model("cls output has no 180° class".into()))
}
