//! Wires the stages together. (Being filled in: detection/recognition land next.)

use super::{decode, Limits, OcrError, Page};

/// The OCR engine. Cheap to share: `Arc<Engine>` across worker threads.
pub struct Engine {
    _private: (),
}

impl Engine {
    /// Loads the models embedded in the binary.
    pub fn new() -> Result<Engine, OcrError> {
        Ok(Engine { _private: () })
    }

    /// Decodes `bytes` (within `limits`) and reads its text.
    pub fn recognize_bytes(&self, bytes: &[u8], limits: &Limits) -> Result<Page, OcrError> {
        let _img = decode::decode(bytes, limits)?;
        Err(OcrError::Model("engine not wired yet".into()))
    }
}
