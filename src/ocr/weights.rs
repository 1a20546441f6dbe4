//! Packed weights shared between a model's plans.
//!
//! tract packs every matmul's weights for its kernel inside each optimised plan, so each plan
//! held its own copy: +20–26 MiB of RSS per recogniser plan (21 MB model) and +12–16 MiB per
//! detector plan (9.9 MB), `examples/planmem.rs`. The packing does not depend on the input
//! width or height when the same kernel is picked, so a new plan's packed weights that equal
//! an older live plan's (same node, same bytes wherever the packer wrote) point at that copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tract_linalg::mmm::EagerPackedInput;
use tract_linalg::pack::PackedFormat;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};

use super::ops::dense::{self, Dense};

/// Where a packed operand sits in a plan: node name, fused step, operand (0 = a, 1 = b).
type Site = (String, usize, usize);

/// One packing of a site's weights, as a plan holds it.
struct Held {
    blob: Weak<Blob>,
    /// Bytes per panel, and how many of them at its start the packer wrote.
    panel: usize,
    written: usize,
}

/// The packed weights of a model's live plans, by where they sit. Held weakly: weights no plan
/// uses any more are freed with their last plan.
#[derive(Default)]
pub struct SharedWeights {
    packed: Mutex<HashMap<Site, Vec<Held>>>,
    /// The packings of this model's [`Dense`] layers in live plans (shared as they are made,
    /// by [`ops::dense`](crate::ocr::ops::dense); recorded here to be counted).
    dense: Mutex<Vec<Weak<dense::Packed>>>,
}

/// Bytes at the start of each panel of `value` that hold weights. tract leaves the rest of a
/// panel (end padding the kernels may read past `k`, alignment) uninitialised, so two packings
/// of the same weights differ there: comparing whole blobs found nothing to share once the
/// allocator had reused memory (the unit test below: 200 MB for 12 plans).
fn written(value: &EagerPackedInput) -> usize {
    match value.fact.format.downcast_ref::<PackedFormat>() {
        Some(f) => (value.fact.k * f.r * f.dt.size_of()).min(value.panel_bytes),
        None => value.panel_bytes,
    }
}

/// Whether `held` has the same weights as `value` wherever the packer wrote them.
fn same(held: &Held, blob: &Blob, value: &EagerPackedInput) -> bool {
    let panel = value.panel_bytes;
    held.panel == panel
        && held.written == written(value)
        && blob.layout() == value.packed.layout()
        && (panel == 0
            || blob
                .chunks(panel)
                .zip(value.packed.chunks(panel))
                .all(|(a, b)| a[..held.written.min(a.len())] == b[..held.written.min(b.len())]))
}

impl SharedWeights {
    /// Points `plan`'s packed weights at ones an earlier plan holds with the same weights in
    /// the same layout, and records the rest for the plans to come.
    pub fn share(&self, plan: &mut TypedModel) {
        let mut packed = self.packed.lock().unwrap_or_else(|p| p.into_inner());
        packed.retain(|_, held| {
            held.retain(|h| h.blob.strong_count() > 0);
            !held.is_empty()
        });
        let mut dense = self.dense.lock().unwrap_or_else(|p| p.into_inner());
        dense.retain(|d| d.strong_count() > 0);
        for node in &mut plan.nodes {
            if let Some(op) = node.op_as::<Dense>() {
                let weak = Arc::downgrade(op.packed());
                if !dense.iter().any(|d| d.ptr_eq(&weak)) {
                    dense.push(weak);
                }
            }
            let name = node.name.clone();
            let Some(op) = node.op_as_mut::<OptMatMul>() else {
                continue;
            };
            for (step, spec) in op.micro_ops.iter_mut().enumerate() {
                let ProtoFusedSpec::AddMatMul { a, b, .. } = spec else {
                    continue;
                };
                for (operand, value) in [a, b].into_iter().enumerate() {
                    let MatMulOperand::Const(value) = value else {
                        continue;
                    };
                    let Some(value) = value.downcast_mut::<EagerPackedInput>() else {
                        continue;
                    };
                    let held = packed.entry((name.clone(), step, operand)).or_default();
                    let found = held.iter().find_map(|h| {
                        let blob = h.blob.upgrade()?;
                        same(h, &blob, value).then_some(blob)
                    });
                    match found {
                        Some(blob) => value.packed = blob,
                        None => held.push(Held {
                            blob: Arc::downgrade(&value.packed),
                            panel: value.panel_bytes,
                            written: written(value),
                        }),
                    }
                }
            }
        }
    }

    /// Bytes of the packed weights that live plans hold, each copy once.
    pub fn live_bytes(&self) -> usize {
        let packed = self.packed.lock().unwrap_or_else(|p| p.into_inner());
        let dense = self.dense.lock().unwrap_or_else(|p| p.into_inner());
        let tract: usize = packed
            .values()
            .flatten()
            .filter_map(|h| h.blob.upgrade())
            .map(|b| b.len())
            .sum();
        tract
            + dense
                .iter()
                .filter_map(Weak::upgrade)
                .map(|p| p.bytes())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use crate::ocr::models::{Model, ModelFiles, Shapes};
    use crate::ocr::recognize::BUCKETS;

    /// The recogniser at every width bucket keeps far fewer packed bytes than a copy per plan
    /// (1.8 copies for 12 plans on an AVX2 machine; the bound is loose, as the kernels tract
    /// picks, so the packings, change with the width and the CPU), and a plan reads exactly
    /// what a plan with its own copy reads.
    #[test]
    fn plans_share_packed_weights_and_read_the_same() {
        let files = ModelFiles::embedded(Default::default());
        let rec = || {
            let shapes = Shapes::FreeWidth { height: 48 };
            Model::load("rec", files.rec.clone(), shapes, usize::MAX).expect("rec")
        };
        let input = |w: usize| -> Vec<f32> {
            (0..3 * 48 * w)
                .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
                .collect()
        };
        let all = rec();
        let mut outputs = Vec::new();
        let mut one_plan = None;
        for w in BUCKETS {
            outputs.push(all.run([1, 3, 48, w], input(w)).expect("run"));
            one_plan.get_or_insert(all.cached_bytes());
        }
        let one_plan = one_plan.unwrap_or_default();
        let kept = all.cached_bytes();
        assert_eq!(all.cached_plans(), BUCKETS.len());
        assert!(
            kept < one_plan * BUCKETS.len() / 2,
            "{} plans keep {kept} bytes, one kept {one_plan}",
            BUCKETS.len()
        );
        let last = BUCKETS[BUCKETS.len() - 1];
        let alone = rec().run([1, 3, 48, last], input(last)).expect("run alone");
        assert_eq!(outputs.last(), Some(&alone));
    }
}
