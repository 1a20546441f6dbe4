//! A dense convolution with a kernel wider than one point, computed output row by output row
//! from that row's input lines, 16 output points × 6 output channels at a time.
//!
//! All three PP-OCRv6 models open with the same stem (a 3×3 stride-2 convolution, two 2×2
//! ones, and a 3×3 stride-2 one of a two-map concatenation), and the detector's head ends in a
//! 3×3 one of a four-map concatenation. tract 0.23.9 lowers the stem's to its direct loops,
//! which ran at 8–35 GFLOP/s on one core here (the 48 → 24-channel stride-2 one at 960×736:
//! 111 ms for 0.46 GMAC, a fifth of the whole detection), and the head's to padding, a copy of
//! the concatenation and a matrix product (47 ms). Here the input lines an output row reads are
//! copied once, zero-padded and split by column parity for a stride of 2, so that every tap of
//! 16 consecutive output points is 16 consecutive floats; 6 channels × 16 points are summed in
//! 12 AVX registers over all taps. The parts of a concatenation are read where they lie: it is
//! never copied, and nothing is padded. At 960×736, one core (`opprofile`, two runs): that
//! stride-2 convolution 25–29 ms, the head's 36–41 ms, all five 94–110 against tract's 210–240.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Output points per block: two AVX registers.
const PANEL: usize = 16;

/// Output channels per block: 6 × 2 accumulators, 2 input registers and a broadcast use 15 of
/// the 16 AVX registers.
const ROWS: usize = 6;

/// A convolution over NCHW f32 of one group: inputs are the image, given as the parts of its
/// channel concatenation (one or more), then the `[out, in, kh, kw]` kernel and a bias of `out`
/// values (or one for all).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowConv {
    kernel: [usize; 2],
    stride: [usize; 2],
    /// Rows and columns of zeros before the input (top, left) and after it (bottom, right).
    before: [usize; 2],
    after: [usize; 2],
    /// Channels of each part of the image.
    parts: Vec<usize>,
    out_channels: usize,
}

/// Replaces each convolution [`RowConv`] takes, reading a channel concatenation that only it
/// reads in place.
pub fn replace(model: &mut TypedModel) -> TractResult<()> {
    if !super::avx2_fma() {
        return Ok(());
    }
    super::patch_each(model, patch)
}

/// The patch that puts a [`RowConv`] in node `id`'s place, if it is a convolution it takes.
fn patch(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let Some((conv, [image, kernel, bias])) = super::conv_at(model, id) else {
        return Ok(None);
    };
    let node = &model.nodes[id];
    let facts = model.node_input_facts(id)?;
    let Some(mut op) = RowConv::taking(conv, &facts) else {
        return Ok(None);
    };
    // The parts of a concatenation along channels that nothing else reads.
    let source = &model.nodes[image.node];
    let absorbed = source.op_as::<TypedConcat>().is_some_and(|c| c.axis == 1)
        && model.outlet_successors(image).len() == 1
        && !model.output_outlets()?.contains(&image);
    let mut images: TVec<OutletId> = tvec![image];
    if absorbed {
        let mut parts = Vec::new();
        for part in &source.inputs {
            let Some(c) = model.outlet_fact(*part)?.shape[1].as_i64() else {
                return Ok(None);
            };
            parts.push(c as usize);
        }
        op.parts = parts;
        images = source.inputs.iter().copied().collect();
    }
    let mut patch = TypedModelPatch::default();
    let mut inputs = TVec::new();
    for outlet in images.iter().chain([&kernel, &bias]) {
        inputs.push(patch.tap_model(model, *outlet)?);
    }
    let out = patch.wire_node(&node.name, op, &inputs)?[0];
    patch.shunt_outside(model, OutletId::new(id, 0), out)?;
    Ok(Some(patch))
}

impl RowConv {
    /// The op computing `conv` (image, kernel and bias facts `inputs`), if it is one this
    /// module takes: f32 NCHW, one group, a constant kernel wider than one point, stride 1 or
    /// 2, no dilation, concrete shapes.
    fn taking(conv: &Conv, inputs: &[&TypedFact]) -> Option<RowConv> {
        let spec = &conv.pool_spec;
        let [image, kernel, bias] = inputs else {
            return None;
        };
        let shape = image.shape.as_concrete()?;
        if spec.rank() != 2 || shape.len() != 4 {
            return None;
        }
        let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&s| s == 1));
        let strides = spec.strides();
        let k = [spec.kernel_shape[0], spec.kernel_shape[1]];
        let simple = conv.q_params.is_none()
            && conv.group == 1
            && image.datum_type == f32::datum_type()
            && kernel.datum_type == f32::datum_type()
            && bias.datum_type == f32::datum_type()
            && spec.data_format == DataFormat::NCHW
            && conv.kernel_fmt == KernelFormat::OIHW
            && k[0] * k[1] > 1
            && strides.iter().all(|&s| s == 1 || s == 2)
            && ones(&spec.dilations)
            && kernel.konst.is_some()
            && kernel.shape.as_concrete()?
                == [spec.output_channels, spec.input_channels, k[0], k[1]]
            && bias.konst.is_some()
            && (bias.shape.volume() == 1.to_dim()
                || bias.shape.volume() == spec.output_channels.to_dim());
        if !simple {
            return None;
        }
        let (before, after) = match &spec.padding {
            PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => {
                ([b[0], b[1]], [a[0], a[1]])
            }
            PaddingSpec::Valid => ([0, 0], [0, 0]),
            // With stride 1, "same" pads k − 1 in all, the odd one after (upper) or before.
            PaddingSpec::SameUpper | PaddingSpec::SameLower if strides.iter().all(|&s| s == 1) => {
                let upper = matches!(spec.padding, PaddingSpec::SameUpper);
                let lo = |k: usize| if upper { (k - 1) / 2 } else { k / 2 };
                let before = [lo(k[0]), lo(k[1])];
                (before, [k[0] - 1 - before[0], k[1] - 1 - before[1]])
            }
            _ => return None,
        };
        let op = RowConv {
            kernel: k,
            stride: [strides[0], strides[1]],
            before,
            after,
            parts: vec![spec.input_channels],
            out_channels: spec.output_channels,
        };
        let [oh, ow] = op.output(shape[2], shape[3])?;
        (oh > 0 && ow > 0).then_some(op)
    }

    /// Output height and width for an input of `h`×`w`, if the kernel fits.
    fn output(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let side = |i: usize, n: usize| {
            let padded = n + self.before[i] + self.after[i];
            (padded >= self.kernel[i]).then(|| (padded - self.kernel[i]) / self.stride[i] + 1)
        };
        Some([side(0, h)?, side(1, w)?])
    }

    /// Taps per output point: every kernel position of every input channel.
    fn taps(&self) -> usize {
        self.parts.iter().sum::<usize>() * self.kernel[0] * self.kernel[1]
    }

    /// The kernel `[out, in, kh, kw]` in tiles of [`ROWS`] output channels (tile i's weights of
    /// tap t at `(i·taps + t)·ROWS`, zero past the last channel: each tile reads its weights in
    /// one run), and the bias per output channel.
    fn packed(&self, kernel: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (taps, out) = (self.taps(), self.out_channels);
        let mut weights = vec![0.0; out.div_ceil(ROWS) * taps * ROWS];
        for o in 0..out {
            let (tile, r) = (o / ROWS, o % ROWS);
            for t in 0..taps {
                weights[(tile * taps + t) * ROWS + r] = kernel[o * taps + t];
            }
        }
        let bias = (0..out)
            .map(|o| if bias.len() == 1 { bias[0] } else { bias[o] })
            .collect();
        (weights, bias)
    }

    /// Output rows `first..first + rows` of every channel from `planes` (each part's
    /// `[c, h, w]`), into the output image `out`.
    fn rows(
        &self,
        planes: &[&[f32]],
        [h, w]: [usize; 2],
        (weights, bias): (&[f32], &[f32]),
        (first, rows): (usize, usize),
        out: Planes,
    ) {
        let [kh, kw] = self.kernel;
        let [sy, sx] = self.stride;
        let [top, left] = self.before;
        let (taps, channels) = (self.taps(), self.out_channels);
        let Planes { ptr, plane, ow } = out;
        // Each input row an output row reads, zero-padded and split into its `sx` phases
        // (columns p, p + sx, p + 2·sx, …), so that every tap reads 16 consecutive floats
        // for 16 consecutive output points. Long enough for the last block's 16 points.
        let len = ow.div_ceil(PANEL) * PANEL + kw / sx + 1;
        let lines: usize = self.parts.iter().sum::<usize>() * kh;
        let mut phases = vec![0.0f32; lines * sx * len];
        // Where tap (line, kx) reads its first point: output point x reads padded column
        // x·sx + kx of its line. The same for every output row.
        let starts: Vec<usize> = (0..lines)
            .flat_map(|line| (0..kw).map(move |kx| (line * sx + kx % sx) * len + kx / sx))
            .collect();
        debug_assert_eq!(starts.len(), taps);
        let furthest = starts.iter().copied().max().unwrap_or(0);
        for r in 0..rows {
            let oy = first + r;
            let mut line_at = phases.chunks_mut(sx * len);
            for (part, &c) in planes.iter().zip(&self.parts) {
                for input in part.chunks(h * w).take(c) {
                    for ky in 0..kh {
                        let split = line_at.next().expect("one line per channel and kernel row");
                        // Input row oy·sy + ky − top; rows of padding are zeros.
                        let src = (oy * sy + ky).checked_sub(top).filter(|&iy| iy < h);
                        split_line(split, src.map(|iy| &input[iy * w..][..w]), left, sx);
                    }
                }
            }
            for x0 in (0..ow).step_by(PANEL) {
                let width = PANEL.min(ow - x0);
                for c0 in (0..channels).step_by(ROWS) {
                    let block = Block {
                        phases: &phases,
                        starts: &starts,
                        furthest,
                        at: x0,
                        weights: &weights[c0 * taps..][..taps * ROWS],
                        bias: &bias[c0..],
                        // SAFETY: rows `first..first + rows` of every plane are this call's
                        // alone ([`Planes`]), and the block writes row `oy` of planes
                        // `c0..c0 + ROWS.min(channels - c0)`, points `x0..x0 + width`.
                        out: unsafe { ptr.add(c0 * plane + oy * ow + x0) },
                        n: plane,
                        width,
                    };
                    block.run(ROWS.min(channels - c0));
                }
            }
        }
    }
}

/// `dst` = the input row `src` (zeros if it is padding) padded with `left` zeros before and
/// zeros after, split into `sx` phases of `dst.len() / sx` floats: padded column j at
/// `(j % sx)·len + j / sx`.
fn split_line(dst: &mut [f32], src: Option<&[f32]>, left: usize, sx: usize) {
    dst.fill(0.0);
    let Some(src) = src else {
        return;
    };
    let len = dst.len() / sx;
    for (phase, dst) in dst.chunks_mut(len).enumerate() {
        // The first input column of this phase, and its place in it.
        let x = (phase + sx - left % sx) % sx;
        let at = (x + left) / sx;
        for (d, &v) in dst.iter_mut().skip(at).zip(src.iter().skip(x).step_by(sx)) {
            *d = v;
        }
    }
}

/// The output image being written, `[channel][row][point]`: each call of [`RowConv::rows`]
/// writes its own rows of every plane, beside other threads writing theirs.
#[derive(Clone, Copy)]
struct Planes {
    ptr: *mut f32,
    /// Points per plane and per row.
    plane: usize,
    ow: usize,
}

// SAFETY: the threads given a `Planes` write disjoint rows of it ([`RowConv::rows`]), and the
// tensor behind it outlives them (`par_chunks_mut` returns when they are done).
unsafe impl Send for Planes {}
unsafe impl Sync for Planes {}

/// Up to [`ROWS`] output channels × 16 output points of one output row.
struct Block<'a> {
    /// The output row's input lines, split by phase ([`RowConv::rows`]).
    phases: &'a [f32],
    /// Where tap t's first point reads in `phases`, the largest of them, and the block's
    /// first point.
    starts: &'a [usize],
    furthest: usize,
    at: usize,
    /// Tap t's weight for channel r at `t·ROWS + r`.
    weights: &'a [f32],
    bias: &'a [f32],
    /// Channel r's points at `r·n`, of which `width` exist: written only there.
    out: *mut f32,
    n: usize,
    width: usize,
}

impl Block<'_> {
    fn run(self, rows: usize) {
        let taps = self.starts.len();
        assert!((1..=ROWS).contains(&rows) && self.bias.len() >= rows && self.width <= PANEL);
        assert!(self.weights.len() >= (taps - 1) * ROWS + rows);
        assert!(self.furthest + self.at + PANEL <= self.phases.len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `RowConv` exists only where the CPU has AVX2 and FMA
        // (`super::avx2_fma`); the asserts above bound every read (`furthest` is the
        // largest of `starts`, set beside them) and the caller gives the block its rows of
        // `out` ([`Planes`]).
        unsafe {
            by_rows!(self, avx, rows)
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.portable(rows);
    }

    /// The same sums in plain code (no [`RowConv`] is made where the kernel below cannot run).
    #[cfg(not(target_arch = "x86_64"))]
    fn portable(self, rows: usize) {
        for r in 0..rows {
            for j in 0..self.width {
                let dot: f32 = (self.starts.iter().enumerate())
                    .map(|(t, &s)| self.weights[t * ROWS + r] * self.phases[s + self.at + j])
                    .sum();
                // SAFETY: the block's rows are its own ([`RowConv::rows`]).
                unsafe { *self.out.add(r * self.n + j) = self.bias[r] + dot };
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx<const R: usize>(self) {
        use std::arch::x86_64::*;
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for (r, acc) in acc.iter_mut().enumerate() {
            acc[0] = _mm256_set1_ps(self.bias[r]);
            acc[1] = acc[0];
        }
        let (p, w) = (self.phases.as_ptr().add(self.at), self.weights.as_ptr());
        for (t, &s) in self.starts.iter().enumerate() {
            let x0 = _mm256_loadu_ps(p.add(s));
            let x1 = _mm256_loadu_ps(p.add(s + 8));
            let wt = w.add(t * ROWS);
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*wt.add(r));
                acc[0] = _mm256_fmadd_ps(a, x0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, x1, acc[1]);
            }
        }
        let mut row = [0.0f32; PANEL];
        for (r, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(row.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), acc[1]);
            std::ptr::copy_nonoverlapping(row.as_ptr(), self.out.add(r * self.n), self.width);
        }
    }
}

impl Op for RowConv {
    fn name(&self) -> StaticName {
        "OcrboxRowConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "kernel {:?}, stride {:?}, padding {:?} before, {:?} after, parts {:?} → {}",
            self.kernel, self.stride, self.before, self.after, self.parts, self.out_channels
        )])
    }

    fn validation(&self) -> Validation {
        // Summed in another order than tract's: equal up to rounding.
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for RowConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let images = self.parts.len();
        ensure!(
            inputs.len() == images + 2,
            "row convolution: wrong input count"
        );
        let (n, h, w) = match *inputs[0].shape() {
            [n, _, h, w] => (n, h, w),
            ref other => bail!("row convolution input is not NCHW: {other:?}"),
        };
        for (input, &c) in inputs[..images].iter().zip(&self.parts) {
            ensure!(
                input.shape() == [n, c, h, w],
                "row convolution part is not {c} channels"
            );
        }
        let Some([oh, ow]) = self.output(h, w) else {
            bail!("row convolution kernel larger than its padded input");
        };
        let views: Vec<_> = inputs[..images]
            .iter()
            .map(|t| t.try_as_plain_ram())
            .collect::<TractResult<_>>()?;
        let slices: Vec<&[f32]> = views
            .iter()
            .map(|v| v.as_slice::<f32>())
            .collect::<TractResult<_>>()?;
        let kernel = inputs[images].try_as_plain_ram()?;
        let bias = inputs[images + 1].try_as_plain_ram()?;
        let (weights, bias) = self.packed(kernel.as_slice::<f32>()?, bias.as_slice::<f32>()?);
        let co = self.out_channels;
        let size = co * oh * ow;
        let cost = size * self.taps();
        // SAFETY: f32 has no invalid bit patterns, and the calls of `rows` write every row of
        // every plane before anything reads it.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&[n, co, oh, ow])? };
        {
            let mut view = output.try_as_plain_ram_mut()?;
            let all = view.as_slice_mut::<f32>()?;
            ensure!(all.len() == n * size);
            // One byte per output row: how `par_chunks_mut` hands out rows to threads.
            let mut rows = vec![0u8; oh];
            for i in 0..n {
                let planes: Vec<&[f32]> = slices
                    .iter()
                    .zip(&self.parts)
                    .map(|(s, &c)| &s[i * c * h * w..][..c * h * w])
                    .collect();
                let out = Planes {
                    ptr: all[i * size..].as_mut_ptr(),
                    plane: oh * ow,
                    ow,
                };
                tract_linalg::multithread::par_chunks_mut(&mut rows, 1, cost, |first, chunk| {
                    let span = (first, chunk.len());
                    self.rows(&planes, [h, w], (&weights, &bias), span, out);
                    Ok(())
                })?;
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for RowConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = inputs[0]
            .shape
            .as_concrete()
            .context("row convolution: symbolic shape")?;
        ensure!(shape.len() == 4, "row convolution input is not NCHW");
        let [oh, ow] = self
            .output(shape[2], shape[3])
            .context("row convolution kernel larger than its padded input")?;
        Ok(tvec!(f32::fact([shape[0], self.out_channels, oh, ow])))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?.remove(0).shape.volume();
        Ok(tvec!((Cost::FMA(f32::datum_type()), out * self.taps())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    /// Straight from the definition, in f64, over the concatenation of `parts`.
    fn reference(
        op: &RowConv,
        image: &[f32],
        [h, w]: [usize; 2],
        k: &[f32],
        b: &[f32],
    ) -> Vec<f32> {
        let ci: usize = op.parts.iter().sum();
        let [kh, kw] = op.kernel;
        let [oh, ow] = op.output(h, w).unwrap();
        let mut out = Vec::new();
        for o in 0..op.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = b[if b.len() == 1 { 0 } else { o }] as f64;
                    for c in 0..ci {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * op.stride[0] + ky) as isize - op.before[0] as isize;
                                let ix = (ox * op.stride[1] + kx) as isize - op.before[1] as isize;
                                if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                    s += k[((o * ci + c) * kh + ky) * kw + kx] as f64
                                        * image[(c * h + iy as usize) * w + ix as usize] as f64;
                                }
                            }
                        }
                    }
                    out.push(s as f32);
                }
            }
        }
        out
    }

    /// `op` on a random image of `h`×`w` against [`reference`].
    fn check(op: &RowConv, [h, w]: [usize; 2]) {
        let [kh, kw] = op.kernel;
        let (ci, co) = (op.parts.iter().sum::<usize>(), op.out_channels);
        let image = values(ci * h * w, 0.1);
        let k = values(co * ci * kh * kw, 0.7);
        for b in [values(co, 0.3), vec![0.25]] {
            let mut inputs = TVec::new();
            let mut at = 0;
            for &c in &op.parts {
                let part = &image[at * h * w..(at + c) * h * w];
                inputs.push(
                    tensor1(part)
                        .into_shape(&[1, c, h, w])
                        .unwrap()
                        .into_tvalue(),
                );
                at += c;
            }
            let kernel = tensor1(&k).into_shape(&[co, ci, kh, kw]).unwrap();
            inputs.push(kernel.into_tvalue());
            inputs.push(tensor1(&b).into_tvalue());
            let got = op.eval(&EvalContext::out_of_plan(), inputs).unwrap();
            let want = reference(op, &image, [h, w], &k, &b);
            let got = got[0].try_as_plain_ram().unwrap();
            let got = got.as_slice::<f32>().unwrap();
            assert_eq!(got.len(), want.len(), "{op:?} at {h}×{w}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{op:?}: {g} vs {w}");
            }
        }
    }

    fn op(
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [[usize; 2]; 2],
        parts: &[usize],
        out: usize,
    ) -> RowConv {
        RowConv {
            kernel,
            stride,
            before: pads[0],
            after: pads[1],
            parts: parts.to_vec(),
            out_channels: out,
        }
    }

    /// The stems' and the detector head's shapes (stride 2 and 1, 3×3 and 2×2 with "same"
    /// padding after), over one part and several, with partial point blocks and channel tiles.
    #[test]
    fn matches_the_definition() {
        if !super::super::avx2_fma() {
            return;
        }
        let ops = [
            op([3, 3], [2, 2], [[1, 1], [1, 1]], &[3], 24),
            op([2, 2], [1, 1], [[0, 0], [1, 1]], &[24], 12),
            op([3, 3], [2, 2], [[1, 1], [1, 1]], &[5, 7], 17),
            op([3, 3], [1, 1], [[1, 1], [1, 1]], &[4, 4, 4, 4], 9),
            op([3, 3], [1, 2], [[0, 2], [1, 0]], &[2], 33),
        ];
        for op in &ops {
            for size in [[9, 13], [6, 29], [3, 4]] {
                check(op, size);
            }
        }
    }

    /// Rows computed on several threads, each writing its own rows of every plane, make the
    /// same image. (Both cases are above tract's threading threshold of 32,768 products, so
    /// `par_chunks_mut` splits their rows.)
    #[test]
    fn threads_write_their_own_rows() {
        if !super::super::avx2_fma() {
            return;
        }
        let pool = tract_linalg::multithread::Executor::multithread(3);
        tract_linalg::multithread::multithread_tract_scope(pool, || {
            check(&op([3, 3], [2, 2], [[1, 1], [1, 1]], &[6, 6], 13), [45, 37]);
            check(&op([2, 2], [1, 1], [[0, 0], [1, 1]], &[8], 24), [31, 50]);
        });
    }
}
