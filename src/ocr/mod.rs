//! The OCR engine: image bytes in, page text out.
//!
//! Stages, one module each: [`decode`] (bytes → RGB, EXIF orientation, limits),
//! detection, line-angle classification, recognition, lone marks beside the lines, and layout
//! (reading order). Beside them, [`models`] loads the ONNX files and keeps a plan per input
//! shape, and [`ops`] computes the graph ops tract is slow at on this machine.

mod classify;
mod context;
mod crop;
mod ctc;
pub mod decode;
mod detect;
/// Documents of one or more pages (images, PDF, multi-page TIFF), decoded a page at a time.
pub mod document;

mod engine;
mod geometry;
/// Decoding hints from clients (digits only, a character set, lengths, case, one line).
pub mod hints;
mod ink;
mod layout;
mod leaders;
mod marks;
/// Model loading and per-shape plans (public for benches/shapes.rs).
pub mod models;
pub mod ops;
mod orient;
mod preprocess;
mod recognize;
mod spacing;
/// Idle workers' cores lent to the image in progress.
pub mod spare;
mod weights;

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    pub decode: Duration,
    pub detect: Duration,
    pub classify: Duration,
    pub recognize: Duration,
}

/// The result for one image (one page of a document).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// Lines in reading order; `text` is these joined (same visual line by a space, lines by `\n`).
    #[serde(skip)]
    pub text: String,
    /// The page's size in pixels: as uploaded once read through [`Engine::recognize_bytes`].
    pub width: u32,
    pub height: u32,
    /// Boxes in the same pixels as `width` × `height`.
    pub lines: Vec<Line>,
    #[serde(skip)]
    pub timings: Timings,
}

impl Page {
    /// Gives the boxes in pixels of a `width` × `height` page (the size it was uploaded at,
    /// before the decoder's downscale to [`Limits::work_side`]).
    pub fn scale_to(&mut self, width: u32, height: u32) {
        let sx = width as f32 / self.width.max(1) as f32;
        let sy = height as f32 / self.height.max(1) as f32;
        for line in &mut self.lines {
            for p in &mut line.quad {
                p[0] = (p[0] * sx).round();
                p[1] = (p[1] * sy).round();
            }
        }
        self.width = width;
        self.height = height;
    }
}

/// The text of a document: its pages' texts in order, joined by a form feed (as Tesseract does).
pub fn document_text(pages: &[Page]) -> String {
    pages
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join("\u{c}")
}

pub use document::{Decoded, Document};
pub use engine::{model_inputs, Engine};
pub use models::{Detector, ModelFiles};
pub use spare::Spare;
