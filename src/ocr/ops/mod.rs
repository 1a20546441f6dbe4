//! Graph ops that tract 0.23.9 computes slowly on x86_64, computed here instead: swapped into
//! each plan's graph by [`optimise`], so every plan runs them where they match.
//!
//! Per node kind at the detector's 960×736, interleaved runs of `cargo run --release --example
//! opprofile -- models/det-small.onnx 960 736` (with `OCRBOX_TRACT_OPS=1`: tract's own ops):
//! the 14 stride-1 depthwise convolutions 60–75 ms with [`depthwise`] against 229–300 ms, the
//! zero padding before a convolution run as a matrix product 4–14 ms with [`pad`] against
//! 6–27 ms; the whole detection 630–860 ms against 820–1160 ms. The tiny detector: 383–389
//! against 444–532 ms. The recogniser's and the line classifier's planes are wide, where
//! tract's depthwise op is the faster, so only their padding changes (48×320: 0.2–0.3 against
//! 0.45 ms). [`split`] rewires tract's own convolutions so that the detector's largest copy is
//! not made. [`dense`] computes the recogniser's last layer (120 → 18,710 classes): 2.7–2.9
//! against 4.5–4.7 ms at 48×320, 11.7 against 17.9 ms at 48×1280. [`conv`] computes the
//! convolutions wider than a point (the three models' stems, the detector's head) where the
//! CPU has AVX2 and FMA, reading concatenations in place: the small detector at 960×736 on
//! one core 0.80–0.89× tract's time, on two 0.92–0.97× (interleaved runs); strips level.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Pad;
use tract_onnx::tract_core::ops::cnn::Conv;

/// `$block.$kernel::<R>()` with the const `R` = `$rows` (1 to 6; callers assert it): the AVX
/// kernels of [`conv`] and [`dense`] keep one accumulator pair per row in registers, so each
/// row count is its own function.
#[cfg(target_arch = "x86_64")]
macro_rules! by_rows {
    ($block:expr, $kernel:ident, $rows:expr) => {
        match $rows {
            1 => $block.$kernel::<1>(),
            2 => $block.$kernel::<2>(),
            3 => $block.$kernel::<3>(),
            4 => $block.$kernel::<4>(),
            5 => $block.$kernel::<5>(),
            6 => $block.$kernel::<6>(),
            n => unreachable!("{n} rows in a block of at most 6"),
        }
    };
}

pub mod conv;
pub mod dense;
pub mod depthwise;
pub mod pad;
pub mod split;

use depthwise::Depthwise;
use pad::ZeroPad;

/// Whether plans get this module's changes at all: `OCRBOX_TRACT_OPS=1` leaves tract's graph
/// as tract optimises it (to compare against).
fn wanted() -> bool {
    std::env::var_os("OCRBOX_TRACT_OPS").is_none()
}

/// Whether this machine gets the ops of this module: x86_64, where they were measured. tract
/// walks depthwise zones the same way on aarch64, but no aarch64 machine was at hand to show
/// that they pay there too. ([`split`] rewires tract's own ops and applies everywhere.)
fn own_ops() -> bool {
    cfg!(target_arch = "x86_64")
}

/// Whether this CPU has AVX2 and FMA, which this module's kernels are written for.
fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Optimises a decluttered graph for this machine: tract's optimisation, with the ops of this
/// module in place of tract's where they apply.
pub fn optimise(mut model: TypedModel) -> TractResult<TypedModel> {
    if !wanted() {
        return model.into_optimized();
    }
    // A concatenation a row convolution reads in place is not copied either: what is left
    // to split is only what `conv` does not take (no AVX2, or not x86_64).
    if own_ops() {
        conv::replace(&mut model)?;
    }
    if !strip(&model)? {
        split::split(&mut model)?;
    }
    if !own_ops() {
        return model.into_optimized();
    }
    dense::replace(&mut model)?;
    // Before tract lowers its convolutions (a depthwise one to its own op, the rest to
    // padding and matrix products), and after, when the padding is an op of its own.
    replace(&mut model, |node, facts| {
        Some(Box::new(Depthwise::replacing(
            node.op_as::<Conv>()?,
            facts,
        )?))
    })?;
    let mut model = model.into_optimized()?;
    replace(&mut model, |node, facts| {
        Some(Box::new(ZeroPad::replacing(
            node.op_as::<Pad>()?,
            facts.first()?,
        )?))
    })?;
    model.into_compact()
}

/// Inputs of at most this many rows are line strips (the recogniser's and the classifier's
/// 48), whose convolutions of a concatenation [`split`] leaves whole: its point is the
/// detector's memory (a 42 MiB copy at 960²), where on a strip the copy is a few MiB at most
/// (the recogniser's live peak at 48×1280: 11.1 MiB whole, 10.9 split). Split, the
/// recogniser's stem convolution has 48 input channels a part, few enough for tract 0.23.9 to
/// run each as its own direct loops once the output row reaches 128 points, and those are the
/// slower here: per node (one core, three interleaved runs of `examples/opprofile.rs`'s
/// kind), the stem took 15–25 ms split against 9–13 whole at 48×640 and 30–77 against 22–30 at
/// 1280 (equal at 320, whose halves stay matrix products). Whole, it is one matrix product.
const STRIP_ROWS: usize = 64;

/// Whether `model`'s input is a line strip ([`STRIP_ROWS`]).
fn strip(model: &TypedModel) -> TractResult<bool> {
    let rows = model
        .input_fact(0)?
        .shape
        .as_concrete()
        .and_then(|s| s.get(2).copied());
    Ok(rows.is_some_and(|r| r <= STRIP_ROWS))
}

/// Node `id`'s convolution and its image, kernel and bias inputs, if it is a `Conv` of three.
fn conv_at(model: &TypedModel, id: usize) -> Option<(&Conv, [OutletId; 3])> {
    let node = &model.nodes[id];
    let [image, kernel, bias] = node.inputs[..] else {
        return None;
    };
    Some((node.op_as::<Conv>()?, [image, kernel, bias]))
}

/// Applies, node by node in evaluation order, the patch `make` gives for it, if any.
fn patch_each(
    model: &mut TypedModel,
    make: impl Fn(&TypedModel, usize) -> TractResult<Option<TypedModelPatch>>,
) -> TractResult<()> {
    for id in model.eval_order()? {
        if let Some(patch) = make(model, id)? {
            patch.apply(model)?;
        }
    }
    Ok(())
}

/// Replaces each node for which `with` gives an op (from the node and its input facts).
fn replace(
    model: &mut TypedModel,
    with: impl Fn(&TypedNode, &[&TypedFact]) -> Option<Box<dyn TypedOp>>,
) -> TractResult<()> {
    for id in model.eval_order()? {
        let Some(op) = with(&model.nodes[id], &model.node_input_facts(id)?) else {
            continue;
        };
        let node = &model.nodes[id];
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
        patch.apply(model)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocr::models::{self, Detector, ModelFiles};

    fn named(m: &TypedModel, name: &str) -> usize {
        m.nodes.iter().filter(|n| n.op().name() == name).count()
    }

    /// Whether a strided convolution of a concatenation in `m` was split ([`split`]).
    fn is_split(m: &TypedModel) -> bool {
        m.nodes.iter().any(|n| n.name.contains(".split1"))
    }

    /// `file` at `shape` planned by [`optimise`], and the largest difference between its
    /// output and that of tract's own plan on the same input.
    fn ours_against_tract(file: &[u8], shape: [usize; 4]) -> (TypedModel, f32) {
        let typed = || models::at_shape(models::parse(file)?, shape);
        let ours = optimise(typed().unwrap()).unwrap();
        let theirs = typed().unwrap().into_optimized().unwrap();
        let data: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
            .collect();
        let run = |m: &TypedModel| {
            let input = Tensor::from_shape(&shape, &data).unwrap();
            let plan = m.clone().into_runnable().unwrap();
            let out = plan.run(tvec!(input.into())).unwrap();
            let view = out[0].try_as_plain_ram().unwrap();
            view.as_slice::<f32>().unwrap().to_vec()
        };
        let (a, b) = (run(&ours), run(&theirs));
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        (ours, worst)
    }

    /// The detector's plan for a tall input, with this module's ops and with tract's own: the
    /// same probability map.
    #[test]
    fn the_detector_reads_the_same_with_these_ops() {
        let files = ModelFiles::embedded(Detector::Small);
        let (ours, worst) = ours_against_tract(&files.det, [1, 3, 256, 128]);
        if cfg!(target_arch = "x86_64") {
            assert!(named(&ours, "OcrboxDepthwise") > 0);
        }
        if cfg!(target_arch = "x86_64") && avx2_fma() {
            // The stem's four convolutions and the head's, each reading its concatenation
            // where it lies.
            assert_eq!(named(&ours, "OcrboxRowConv"), 5);
            assert!(!is_split(&ours) && named(&ours, "Concat") == 0);
        } else {
            // The stem's strided convolution of two maps, split; the head's stride-1 one, not.
            assert!(is_split(&ours) && named(&ours, "Concat") == 1);
        }
        assert!(worst < 1e-4, "largest difference {worst}");
    }

    /// A wide line's recogniser plan keeps its stem's convolution whole (unsplit; its four
    /// convolutions are [`conv::RowConv`]s where the CPU runs them), has its last layer as a
    /// [`dense::Dense`] there, and reads the same as tract's own plan.
    #[test]
    fn the_recogniser_keeps_its_stem_whole() {
        let files = ModelFiles::embedded(Detector::Small);
        let (ours, worst) = ours_against_tract(&files.rec, [1, 3, 48, 640]);
        assert!(!is_split(&ours));
        assert_eq!(named(&ours, "OcrboxDense"), usize::from(dense::supported()));
        if cfg!(target_arch = "x86_64") && avx2_fma() {
            assert_eq!(named(&ours, "OcrboxRowConv"), 4);
        }
        assert!(worst < 1e-4, "largest difference {worst}");
    }
}
