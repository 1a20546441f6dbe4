//! A depthwise convolution (one filter per channel) for planes taller than wide.
//!
//! tract 0.23.9 walks a depthwise convolution's output in zones, each with its inner loop along
//! the zone's longest side, and only an inner loop along a row runs its SIMD kernel: on a plane
//! taller than wide every tap of every point is summed in scalar code, at ~1.5 GMAC/s.
//! PP-OCRv6's detector has four 7×7 depthwise convolutions in its neck, one over 96 channels at
//! a quarter of the input's size, and a portrait page or a receipt is detected tall: at 960×736
//! that one node took 128–159 ms, all 17 depthwise nodes 229–300 ms of 800–1160 (`cargo run
//! --release --example opprofile -- models/det-small.onnx 960 736`); at 608×960, 33–39 ms.
//! Here each output row is a sum of shifted input rows scaled by one tap (`y += w·x` over
//! contiguous slices), which the compiler vectorises: 8 lanes with fused multiply-adds where the
//! CPU has AVX2 and FMA.
//!
//! It takes the place of tract's `Conv` where it applies (f32, (N)CHW, one filter per channel,
//! stride and dilation 1, an output taller than wide), before the graph is optimised.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// A stride-1 depthwise convolution over (N)CHW f32: inputs are the image, the `[C, 1, kh, kw]`
/// kernel and a bias of `C` values (or one for all).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Depthwise {
    /// Kernel height and width.
    kernel: [usize; 2],
    /// Rows and columns of zeros before the input (top, left) and after it (bottom, right).
    before: [usize; 2],
    after: [usize; 2],
}

impl Depthwise {
    /// The op computing `conv`, if it is one this module takes.
    pub fn replacing(conv: &Conv, inputs: &[&TypedFact]) -> Option<Depthwise> {
        let spec = &conv.pool_spec;
        let [image, kernel, bias] = inputs else {
            return None;
        };
        let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&s| s == 1));
        let channels = spec.input_channels;
        let simple = conv.q_params.is_none()
            && image.datum_type == f32::datum_type()
            && matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
            && spec.rank() == 2
            && conv.kernel_fmt == KernelFormat::OIHW
            && conv.group == channels
            && spec.output_channels == channels
            && ones(&spec.strides)
            && ones(&spec.dilations)
            && image.rank() == 3 + spec.data_format.has_n() as usize
            && kernel.konst.is_some()
            && kernel.shape.as_concrete()?
                == [channels, 1, spec.kernel_shape[0], spec.kernel_shape[1]]
            && bias.konst.is_some()
            && (bias.shape.volume() == 1.to_dim() || bias.shape.volume() == channels.to_dim());
        if !simple {
            return None;
        }
        let kernel = [spec.kernel_shape[0], spec.kernel_shape[1]];
        let (before, after) = match &spec.padding {
            PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => {
                ([b[0], b[1]], [a[0], a[1]])
            }
            PaddingSpec::Valid => ([0, 0], [0, 0]),
            // With stride 1, "same" pads an odd kernel by half of it on each side.
            PaddingSpec::SameUpper | PaddingSpec::SameLower
                if kernel.iter().all(|k| k % 2 == 1) =>
            {
                let half = [kernel[0] / 2, kernel[1] / 2];
                (half, half)
            }
            _ => return None,
        };
        let op = Depthwise {
            kernel,
            before,
            after,
        };
        // tract's scanner runs its inner loop along the longer side of the output, and only
        // along rows is that loop vectorised: on wide planes its op is the faster one.
        let shape = image.shape.as_concrete()?;
        let [h, w] = [shape[shape.len() - 2], shape[shape.len() - 1]];
        let fits = h + before[0] + after[0] >= kernel[0] && w + before[1] + after[1] >= kernel[1];
        (fits && {
            let [oh, ow] = op.output(&h, &w);
            oh > ow
        })
        .then_some(op)
    }

    /// Output height and width for an input of `h`×`w`.
    fn output<D: DimLike>(&self, h: &D, w: &D) -> [D; 2] {
        let [kh, kw] = self.kernel;
        [
            h.clone() + self.before[0] + self.after[0] - kh + 1,
            w.clone() + self.before[1] + self.after[1] - kw + 1,
        ]
    }
}

impl Op for Depthwise {
    fn name(&self) -> StaticName {
        "OcrboxDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "kernel {:?}, padding {:?} before, {:?} after",
            self.kernel, self.before, self.after
        )])
    }

    fn validation(&self) -> Validation {
        // The sum runs in another order than tract's: equal up to rounding.
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for Depthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (image, kernel, bias) = args_3!(inputs);
        let (n, c, h, w) = match *image.shape() {
            [n, c, h, w] => (n, c, h, w),
            [c, h, w] => (1, c, h, w),
            ref other => bail!("depthwise input is not (N)CHW: {other:?}"),
        };
        let mut shape: TVec<usize> = image.shape().into();
        let [oh, ow] = self.output(&h, &w);
        let rank = shape.len();
        shape[rank - 2..].copy_from_slice(&[oh, ow]);
        let (image, kernel, bias) = (
            image.try_as_plain_ram()?,
            kernel.try_as_plain_ram()?,
            bias.try_as_plain_ram()?,
        );
        let (image, kernel, bias) = (
            image.as_slice::<f32>()?,
            kernel.as_slice::<f32>()?,
            bias.as_slice::<f32>()?,
        );
        let taps = self.kernel[0] * self.kernel[1];
        let axpy = axpy_for_this_cpu();
        // SAFETY: f32 has no invalid bit patterns, and `plane` writes every element of its
        // plane (its first step fills it with the bias) before anything reads it.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        if oh * ow > 0 {
            let mut view = output.try_as_plain_ram_mut()?;
            let planes = view.as_slice_mut::<f32>()?;
            tract_linalg::multithread::par_chunks_mut(planes, oh * ow, n * c * h * w * taps, {
                |first, chunk| {
                    for (i, out) in chunk.chunks_mut(oh * ow).enumerate() {
                        let plane = first + i;
                        let ch = plane % c;
                        let b = if bias.len() == 1 { bias[0] } else { bias[ch] };
                        let input = &image[plane * h * w..][..h * w];
                        let k = &kernel[ch * taps..][..taps];
                        self.plane(input, [h, w], k, b, out, [oh, ow], axpy);
                    }
                    Ok(())
                }
            })?;
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Depthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.to_tvec();
        let rank = shape.len();
        ensure!(rank >= 3, "depthwise input is not (N)CHW");
        let [oh, ow] = self.output(&shape[rank - 2], &shape[rank - 1]);
        shape[rank - 2] = oh;
        shape[rank - 1] = ow;
        Ok(tvec!(f32::fact(shape)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let taps = (self.kernel[0] * self.kernel[1]) as i64;
        let out = self.output_facts(inputs)?.remove(0).shape.volume();
        Ok(tvec!((Cost::FMA(f32::datum_type()), out * taps)))
    }

    as_op!();
}

impl Depthwise {
    /// One channel: `out` (`oh`×`ow`) = `bias` + `input` (`h`×`w`, zero-padded) ⊛ `k`.
    ///
    /// Tap by tap over whole rows. (Summing all the taps of 32 columns in registers instead, 8
    /// independent sums to hide the FMA latency, ran no faster on the detector's 7×7 node:
    /// 42–50 ms against 42–44, interleaved runs.)
    #[allow(clippy::too_many_arguments)]
    fn plane(
        &self,
        input: &[f32],
        [h, w]: [usize; 2],
        k: &[f32],
        bias: f32,
        out: &mut [f32],
        [oh, ow]: [usize; 2],
        axpy: Axpy,
    ) {
        let [kh, kw] = self.kernel;
        let [top, left] = self.before;
        out.fill(bias);
        for oy in 0..oh {
            let row = &mut out[oy * ow..][..ow];
            for ky in 0..kh {
                // Input row oy + ky − top; rows of padding add nothing.
                let Some(iy) = (oy + ky).checked_sub(top).filter(|&iy| iy < h) else {
                    continue;
                };
                let src = &input[iy * w..][..w];
                for kx in 0..kw {
                    // Output column ox reads input column ox + kx − left, where it exists.
                    let lo = left.saturating_sub(kx);
                    let hi = ow.min((w + left).saturating_sub(kx));
                    if lo < hi {
                        let from = lo + kx - left;
                        axpy(
                            &mut row[lo..hi],
                            k[ky * kw + kx],
                            &src[from..from + hi - lo],
                        );
                    }
                }
            }
        }
    }
}

/// `y += a·x`, element by element (equal lengths).
type Axpy = fn(&mut [f32], f32, &[f32]);

/// The [`Axpy`] for this CPU, chosen once per run of the op rather than per row and tap.
fn axpy_for_this_cpu() -> Axpy {
    #[cfg(target_arch = "x86_64")]
    if super::avx2_fma() {
        return axpy_avx2_fma;
    }
    axpy
}

fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// [`axpy`] with fused multiply-adds, 8 lanes at a time.
#[cfg(target_arch = "x86_64")]
fn axpy_avx2_fma(y: &mut [f32], a: f32, x: &[f32]) {
    #[target_feature(enable = "avx2,fma")]
    unsafe fn inner(y: &mut [f32], a: f32, x: &[f32]) {
        for (y, x) in y.iter_mut().zip(x) {
            *y = x.mul_add(a, *y);
        }
    }
    // SAFETY: only chosen by `axpy_for_this_cpu` when the CPU has AVX2 and FMA.
    unsafe { inner(y, a, x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight from the definition, in f64.
    fn reference(
        op: &Depthwise,
        img: &[f32],
        [c, h, w]: [usize; 3],
        k: &[f32],
        b: &[f32],
    ) -> Vec<f32> {
        let [kh, kw] = op.kernel;
        let [oh, ow] = op.output(&h, &w);
        let mut out = Vec::new();
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = b[if b.len() == 1 { 0 } else { ch }] as f64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (iy, ix) = (
                                (oy + ky) as isize - op.before[0] as isize,
                                (ox + kx) as isize - op.before[1] as isize,
                            );
                            if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                s += k[ch * kh * kw + ky * kw + kx] as f64
                                    * img[(ch * h + iy as usize) * w + ix as usize] as f64;
                            }
                        }
                    }
                    out.push(s as f32);
                }
            }
        }
        out
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    #[test]
    fn matches_the_definition_for_the_models_kernels() {
        // 7×7 and 5×5 (detectors), 3×3, 1×7 (recogniser), and an uneven padding.
        let cases = [
            ([7, 7], [3, 3], [3, 3]),
            ([5, 5], [2, 2], [2, 2]),
            ([3, 3], [1, 1], [1, 1]),
            ([1, 7], [0, 3], [0, 3]),
            ([3, 3], [0, 2], [1, 0]),
        ];
        for (kernel, before, after) in cases {
            let op = Depthwise {
                kernel,
                before,
                after,
            };
            for (c, h, w) in [(5, 9, 13), (3, 6, 83)] {
                let img = values(c * h * w, 0.1);
                let k = values(c * kernel[0] * kernel[1], 0.7);
                for b in [values(c, 0.3), vec![0.25]] {
                    let inputs = tvec!(
                        tensor1(&img)
                            .into_shape(&[1, c, h, w])
                            .unwrap()
                            .into_tvalue(),
                        tensor1(&k)
                            .into_shape(&[c, 1, kernel[0], kernel[1]])
                            .unwrap()
                            .into_tvalue(),
                        tensor1(&b).into_tvalue(),
                    );
                    let got = op.eval(&EvalContext::out_of_plan(), inputs).unwrap();
                    let want = reference(&op, &img, [c, h, w], &k, &b);
                    let got = got[0].try_as_plain_ram().unwrap();
                    let got = got.as_slice::<f32>().unwrap();
                    assert_eq!(got.len(), want.len(), "{op:?}");
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() < 1e-4, "{op:?}: {g} vs {w}");
                    }
                }
            }
        }
    }
}
