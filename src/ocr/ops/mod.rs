//! Graph ops that tract 0.23.9 computes slowly on x86_64, computed here instead: swapped into
//! each plan's graph by [`optimise`], so every plan runs them where they match.
//!
//! Per node kind at the detector's 960×736, interleaved runs of `cargo run --release --example
//! opprofile -- models/det-small.onnx 960 736` (with `OCRBOX_TRACT_OPS=1`: tract's own ops):
//! the 14 stride-1 depthwise convolutions 60–75 ms with [`depthwise`] against 265–300 ms, the
//! zero padding before a convolution run as a matrix product 5–14 ms with [`pad`] against
//! 11–27 ms; the whole detection 630–860 ms against 870–1160 ms. The tiny detector: 383–389
//! against 444–532 ms. The recogniser (48×320) and the line classifier do not change (its
//! depthwise planes are small, where tract's op is as fast).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Pad;
use tract_onnx::tract_core::ops::cnn::Conv;

pub mod depthwise;
pub mod pad;

use depthwise::Depthwise;
use pad::ZeroPad;

/// Whether this machine gets the ops of this module. On aarch64 tract has NEON kernels for
/// these; they were measured here on x86_64 only.
fn wanted() -> bool {
    cfg!(target_arch = "x86_64") && std::env::var_os("OCRBOX_TRACT_OPS").is_none()
}

/// Optimises a decluttered graph for this machine: tract's optimisation, with the ops of this
/// module in place of tract's where they apply.
pub fn optimise(mut model: TypedModel) -> TractResult<TypedModel> {
    if !wanted() {
        return model.into_optimized();
    }
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
