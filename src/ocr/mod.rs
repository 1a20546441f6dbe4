//! The OCR engine: image bytes in, page text out.
//!
//! Stages, one module each: [`decode`] (bytes → RGB, EXIF orientation, limits),
//! detection, line-angle classification, recognition, and layout (reading order).

mod classify;
mod crop;
mod ctc;
pub mod decode;
mod detect;
mod engine;
mod geometry;
mod layout;
/// Model loading and per-shape plans (public for benches/shapes.rs).
pub mod models;
mod orient;
mod preprocess;
mod recognize;
mod spacing;

use std::time::Duration;

pub use decode::{DecodeError, Limits};

/// Errors the engine can report.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// The input could not be turned into pixels.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A model failed to load or run (a bug or a corrupt model file, never the user's input).
    #[error("model error: {0}")]
    Model(String),
}

/// One recognised text line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Line {
    /// The recognised text.
    pub text: String,
    /// Mean per-character probability, 0..1.
    pub confidence: f32,
    /// Corners in source-image pixels: top-left, top-right, bottom-right, bottom-left.
    #[serde(rename = "box")]
    pub quad: [[f32; 2]; 4],
}

/// Where the time went, per stage.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    pub decode: Duration,
    pub detect: Duration,
    pub classify: Duration,
    pub recognize: Duration,
}

/// The result for one image.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Page {
    /// Lines in reading order; `text` is these joined (same visual line by a space, lines by `\n`).
    pub text: String,
    pub lines: Vec<Line>,
    #[serde(skip)]
    pub timings: Timings,
}

pub use engine::{model_inputs, Engine};
pub use models::{Detector, ModelFiles};
