//! The recogniser's last layer: 120 features → 18,710 class scores at each step of a strip.
//!
//! tract 0.23.9 runs it as one matrix product that keeps only ~35–40 GFLOP/s on this machine
//! (4.5–4.7 ms of a 48×320 strip's 43 ms, one core: `examples/opprofile.rs`), against ~3.0 ms in
//! onnxruntime: its inner dimension (120) is short, so the product is bound by loading its
//! 9 MB of weights and storing its 3 MB of scores rather than by arithmetic. Here the weights
//! are packed once in panels of 16 classes; each group of panels that fits in the L2 cache is
//! read from there for every block of up to 6 steps, and each block's scores are stored row by
//! row. A standalone timing of this loop (`m` = 40 steps) gave 2.4–3.0 ms; 16-class panels read
//! straight from the ONNX layout (row stride 18,710) 4.1–4.5 ms.
//!
//! It takes the place of tract's `EinSum km,kn->amn` with constant weights (and the constant
//! bias added after it) before the graph is optimised, on x86_64 CPUs with AVX2 and FMA.

use std::sync::{Arc, Mutex, Weak};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;

/// Classes per panel: two AVX registers.
const PANEL: usize = 16;

/// Steps per block: 6 × 2 accumulators, 2 weight registers and a broadcast use 15 of the 16
/// AVX registers.
const ROWS: usize = 6;

/// Bytes of weights per group of panels read again for every block of steps: about half of
/// the 512 KiB L2 cache of the machine measured. Groups of 16 / 32 / 64 / all 1,170 panels of
/// the recogniser's layer at 40 steps: 2.6–3.1 / 2.5–3.4 / 2.4–2.9 / 2.5 ms; at 160 steps 9.4 /
/// 9.2–9.4 / 9.7–10.7 / 10.1–10.8 ms.
const GROUP_BYTES: usize = 256 << 10;

/// Layers with fewer outputs are left to tract: the point is the recogniser's 18,710 classes.
const MIN_OUTPUTS: usize = 4096;

/// Weights packed panel by panel (`[panel][k][16]`, the last panel's missing classes zero),
/// and the bias padded the same way.
#[derive(Debug)]
pub struct Packed {
    k: usize,
    n: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
    /// The constant packed.
    source: Weak<Tensor>,
}

impl Packed {
    fn new(weights: &[f32], bias: &[f32], k: usize, n: usize, source: Weak<Tensor>) -> Packed {
        let count = n.div_ceil(PANEL);
        let mut panels = vec![0.0; count * k * PANEL];
        for (panel, packed) in panels.chunks_exact_mut(k * PANEL).enumerate() {
            for (row, to) in packed.chunks_exact_mut(PANEL).enumerate() {
                let from = Self::row(weights, n, panel, row);
                to[..from.len()].copy_from_slice(from);
            }
        }
        let mut padded = vec![0.0; count * PANEL];
        padded[..n].copy_from_slice(bias);
        Packed {
            k,
            n,
            panels,
            bias: padded,
            source,
        }
    }

    /// The weights of `panel` in row `row` of the `[k, n]` matrix `weights`.
    fn row(weights: &[f32], n: usize, panel: usize, row: usize) -> &[f32] {
        let col = panel * PANEL;
        &weights[row * n + col..][..PANEL.min(n - col)]
    }

    /// Whether these are `weights` and `bias` packed.
    fn holds(&self, weights: &[f32], bias: &[f32], k: usize, n: usize) -> bool {
        self.k == k
            && self.n == n
            && weights.len() == k * n
            && self.bias[..n] == *bias
            && self
                .panels
                .chunks_exact(k * PANEL)
                .enumerate()
                .all(|(panel, packed)| {
                    packed.chunks_exact(PANEL).enumerate().all(|(row, held)| {
                        let w = Self::row(weights, n, panel, row);
                        held[..w.len()] == *w
                    })
                })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * (self.panels.len() + self.bias.len())
    }
}

/// Packed weights of the live plans: each plan of the recogniser (one per strip width) has
/// this layer, and they share one packing (9 MiB) while any of them lives. (Each model's
/// `SharedWeights` counts the ones its plans hold.)
static LIVE: Mutex<Vec<Weak<Packed>>> = Mutex::new(Vec::new());

/// The live packing of `weights` and `bias`, or a new one.
///
/// The recogniser's plans are made from one width-free graph, whose constant they share: a
/// packing made from the same tensor is found without comparing 9 MB (7–10 ms per plan).
fn packed(source: &Arc<Tensor>, bias: &[f32], k: usize, n: usize) -> TractResult<Arc<Packed>> {
    let weights = source.try_as_plain_ram()?;
    let weights = weights.as_slice::<f32>()?;
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(|w| w.strong_count() > 0);
    let from = Arc::downgrade(source);
    let candidates: Vec<Arc<Packed>> = live.iter().filter_map(Weak::upgrade).collect();
    // A dead `source` still pins its address, so equal pointers are the same tensor; only
    // without one are contents compared.
    let found = candidates
        .iter()
        .find(|p| p.source.ptr_eq(&from) && p.k == k && p.n == n && p.bias[..n] == *bias)
        .or_else(|| candidates.iter().find(|p| p.holds(weights, bias, k, n)))
        .cloned();
    if let Some(p) = found {
        return Ok(p);
    }
    let p = Arc::new(Packed::new(weights, bias, k, n, from));
    live.push(Arc::downgrade(&p));
    Ok(p)
}

/// `[1, m, n]` = `x`ᵀ · W + bias, for `x` of shape `[k, m]` (features by step).
#[derive(Debug, Clone)]
pub struct Dense {
    packed: Arc<Packed>,
}

impl Dense {
    /// The packed weights (shared by the plans that have this layer).
    pub fn packed(&self) -> &Arc<Packed> {
        &self.packed
    }
}

impl PartialEq for Dense {
    fn eq(&self, other: &Dense) -> bool {
        Arc::ptr_eq(&self.packed, &other.packed)
    }
}

impl Eq for Dense {}

/// Whether this CPU runs [`Dense`]'s kernel.
pub(crate) fn supported() -> bool {
    super::avx2_fma()
}

/// Replaces each `EinSum km,kn->amn` of a constant `[k, n]` f32 matrix (n ≥ [`MIN_OUTPUTS`])
/// and the constant `[1, 1, n]` bias added to it, if any, by a [`Dense`].
pub fn replace(model: &mut TypedModel) -> TractResult<()> {
    if !supported() {
        return Ok(());
    }
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        let Some(einsum) = node.op_as::<EinSum>() else {
            continue;
        };
        let facts: TVec<TypedFact> = model.node_input_facts(id)?.into_iter().cloned().collect();
        let [x, w] = &facts[..] else {
            continue;
        };
        let Some(weights) = w.konst.clone() else {
            continue;
        };
        let (Some(xs), Some(ws)) = (x.shape.as_concrete(), w.shape.as_concrete()) else {
            continue;
        };
        let simple = einsum.q_params.is_none()
            && einsum.axes.to_string() == "km,kn->amn"
            && x.datum_type == f32::datum_type()
            && weights.datum_type() == f32::datum_type()
            && xs.len() == 2
            && ws.len() == 2
            && xs[0] == ws[0]
            && ws[1] >= MIN_OUTPUTS
            && node.outputs[0].fact.shape.as_concrete() == Some(&[1, xs[1], ws[1]][..]);
        if !simple {
            continue;
        }
        let (k, n) = (ws[0], ws[1]);
        // The bias: a constant [1, 1, n] added to the product and nothing else reading it.
        let next = model.single_succ(id)?;
        let bias = next.and_then(|add| {
            let op = add.op_as::<TypedBinOp>()?;
            if !op.0.is::<Add>() || add.inputs.len() != 2 {
                return None;
            }
            let other = add.inputs.iter().find(|i| i.node != id)?;
            let konst = model.outlet_fact(*other).ok()?.konst.clone()?;
            let fits = konst.datum_type() == f32::datum_type()
                && konst.shape().iter().product::<usize>() == n
                && konst.shape().last() == Some(&n);
            fits.then_some((add.id, konst))
        });
        let (last, bias) = match bias {
            Some((add, konst)) => (add, konst.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()),
            None => (id, vec![0.0; n]),
        };
        let op = Dense {
            packed: packed(&weights, &bias, k, n)?,
        };
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, node.inputs[0])?;
        let out = patch.wire_node(&node.name, op, &[input])?;
        patch.shunt_outside(model, OutletId::new(last, 0), out[0])?;
        patch.apply(model)?;
    }
    Ok(())
}

impl Op for Dense {
    fn name(&self) -> StaticName {
        "OcrboxDense".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{} → {}", self.packed.k, self.packed.n)])
    }

    fn validation(&self) -> Validation {
        // Summed in another order than tract's: equal up to rounding.
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for Dense {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let Packed { k, n, .. } = *self.packed;
        let [xk, m] = *x.shape() else {
            bail!("dense input is not [k, m]: {:?}", x.shape());
        };
        ensure!(xk == k, "dense input has {xk} features, weights {k}");
        let x = x.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        // SAFETY: f32 has no invalid bit patterns, and `rows` writes every element.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&[1, m, n])? };
        if m * n > 0 {
            let mut view = output.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            tract_linalg::multithread::par_chunks_mut(out, n, m * k * n, |first, chunk| {
                self.rows(x, m, first, chunk);
                Ok(())
            })?;
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Dense {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.rank() == 2, "dense input is not [k, m]");
        Ok(tvec!(f32::fact([
            1.to_dim(),
            shape[1].clone(),
            self.packed.n.to_dim()
        ])))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let m = inputs[0].shape[1].clone();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            m * (self.packed.k * self.packed.n)
        )))
    }

    as_op!();
}

impl Dense {
    /// Output rows `first..` (one per step, `out` holding whole rows) from `x` (`[k, m]`).
    fn rows(&self, x: &[f32], m: usize, first: usize, out: &mut [f32]) {
        let p = &*self.packed;
        let (k, n) = (p.k, p.n);
        let count = out.len() / n.max(1);
        let panels = n.div_ceil(PANEL);
        let group = (GROUP_BYTES / (4 * k * PANEL)).max(1);
        for g in (0..panels).step_by(group) {
            for r in (0..count).step_by(ROWS) {
                let rows = ROWS.min(count - r);
                for panel in g..(g + group).min(panels) {
                    let col = panel * PANEL;
                    let width = PANEL.min(n - col);
                    let tile = Tile {
                        x: &x[first + r..],
                        m,
                        weights: &p.panels[panel * k * PANEL..][..k * PANEL],
                        bias: &p.bias[col..col + PANEL],
                        out: &mut out[r * n + col..],
                        n,
                        width,
                    };
                    tile.run(rows);
                }
            }
        }
    }
}

/// One block of up to [`ROWS`] steps × one panel.
struct Tile<'a> {
    /// Features of the block's first step (step `i`'s feature `f` at `f·m + i`).
    x: &'a [f32],
    m: usize,
    /// The panel: feature `f`'s 16 weights at `16·f`.
    weights: &'a [f32],
    bias: &'a [f32],
    /// The block's first row from the panel's first column (row stride `n`).
    out: &'a mut [f32],
    n: usize,
    /// Columns of the panel that exist.
    width: usize,
}

impl Tile<'_> {
    fn run(self, rows: usize) {
        assert!((1..=ROWS).contains(&rows));
        assert!(self.x.len() >= (self.weights.len() / PANEL - 1) * self.m + rows);
        assert!(self.out.len() >= (rows - 1) * self.n + self.width);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Dense` exists only where `supported()` (AVX2 and FMA); the asserts above
        // bound every read of `x` and write of `out`, and `weights`/`bias` are whole panels.
        unsafe {
            by_rows!(self, avx, rows)
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.portable(rows);
    }

    /// The same sums in plain code (no [`Dense`] is made where the kernel above cannot run).
    #[cfg(not(target_arch = "x86_64"))]
    fn portable(self, rows: usize) {
        let k = self.weights.len() / PANEL;
        for r in 0..rows {
            for c in 0..self.width {
                let dot: f32 = (0..k)
                    .map(|f| self.x[f * self.m + r] * self.weights[f * PANEL + c])
                    .sum();
                self.out[r * self.n + c] = self.bias[c] + dot;
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx<const R: usize>(self) {
        use std::arch::x86_64::*;
        let k = self.weights.len() / PANEL;
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let (xp, wp) = (self.x.as_ptr(), self.weights.as_ptr());
        for f in 0..k {
            let w0 = _mm256_loadu_ps(wp.add(f * PANEL));
            let w1 = _mm256_loadu_ps(wp.add(f * PANEL + 8));
            let xf = xp.add(f * self.m);
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*xf.add(r));
                acc[0] = _mm256_fmadd_ps(a, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, w1, acc[1]);
            }
        }
        let b0 = _mm256_loadu_ps(self.bias.as_ptr());
        let b1 = _mm256_loadu_ps(self.bias.as_ptr().add(8));
        let mut row = [0.0f32; PANEL];
        for (r, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(row.as_mut_ptr(), _mm256_add_ps(acc[0], b0));
            _mm256_storeu_ps(row.as_mut_ptr().add(8), _mm256_add_ps(acc[1], b1));
            self.out[r * self.n..][..self.width].copy_from_slice(&row[..self.width]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    /// Against the definition in f64, for step counts that leave partial blocks and a class
    /// count that leaves a partial panel; two packings of the same weights are one.
    #[test]
    fn matches_the_definition() {
        if !supported() {
            return;
        }
        let (k, n) = (7, 16 * 5 + 3);
        let (w, b) = (values(k * n, 0.2), values(n, 0.9));
        let source = Arc::new(tensor1(&w).into_shape(&[k, n]).unwrap());
        let op = Dense {
            packed: packed(&source, &b, k, n).unwrap(),
        };
        // The same tensor, and a copy of it: one packing.
        assert!(Arc::ptr_eq(&op.packed, &packed(&source, &b, k, n).unwrap()));
        let copy = Arc::new(source.as_ref().clone());
        assert!(Arc::ptr_eq(&op.packed, &packed(&copy, &b, k, n).unwrap()));
        for m in [1, 5, 6, 13] {
            let x = values(k * m, 0.4);
            let input = tensor1(&x).into_shape(&[k, m]).unwrap().into_tvalue();
            let got = op.eval(&EvalContext::out_of_plan(), tvec!(input)).unwrap();
            assert_eq!(got[0].shape(), &[1, m, n]);
            let got = got[0].try_as_plain_ram().unwrap();
            let got = got.as_slice::<f32>().unwrap();
            for i in 0..m {
                for j in 0..n {
                    let want = b[j] as f64
                        + (0..k)
                            .map(|f| x[f * m + i] as f64 * w[f * n + j] as f64)
                            .sum::<f64>();
                    let g = got[i * n + j];
                    assert!(
                        (g as f64 - want).abs() < 1e-4,
                        "m {m} [{i}, {j}]: {g} vs {want}"
                    );
                }
            }
        }
    }
}
