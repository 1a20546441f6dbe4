//! What the model examples share: their arguments and an optimised plan of one shape.
use ocrbox::ocr::models;
use tract_onnx::prelude::*;

/// `MODEL.onnx HEIGHT WIDTH` and then `extra` more arguments, or exits with `usage`.
#[allow(dead_code)] // planmem loads the embedded models
pub fn args(usage: &str, extra: usize) -> (String, [usize; 4], Vec<String>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (args.len() == 3 + extra)
        .then(|| Some([1, 3, args[1].parse().ok()?, args[2].parse().ok()?]))
        .flatten();
    let Some(shape) = parsed else {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    };
    (args[0].clone(), shape, args[3..].to_vec())
}

/// The model parsed as ocrbox parses it (value infos ignored: see `src/ocr/models.rs`).
#[allow(dead_code)] // planmem loads the embedded models
pub fn parse(bytes: &[u8]) -> TractResult<InferenceModel> {
    models::parse(bytes)
}

/// An optimised plan of `file` at `shape`, built as the engine builds its plans
/// (`OCRBOX_TRACT_OPS=1`: with tract's own ops only).
#[allow(dead_code)] // not every example builds its plan this way
pub fn plan(file: &str, shape: [usize; 4]) -> TractResult<std::sync::Arc<TypedRunnableModel>> {
    let typed = models::at_shape(parse(&std::fs::read(file)?)?, shape)?;
    ocrbox::ocr::ops::optimise(typed)?.into_runnable()
}

/// A `/proc/self/status` field in KiB (`RssAnon`, `VmHWM`, ...), read after mimalloc has
/// returned what is free, so the figure is what stays in use (0 if absent).
#[allow(dead_code)] // the memory examples only
pub fn kib_in_use(field: &str) -> u64 {
    // SAFETY: a flag argument only; callable at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
