//! Zero padding by rows.
//!
//! tract 0.23.9 pads through ndarray's n-dimensional slice assignment, element by element: the
//! padding it puts before the detector's convolutions that run as matrix products took 20–27 ms
//! for 96×240×184 floats and 60 ms for 48×480×368 (0.5 GB/s) at 960×736, about a tenth of the
//! detection (`opprofile`). Here each input row is one copy into the zeroed output.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};

/// Pads an f32 tensor with zeros: `pads[axis]` = (before, after).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZeroPad {
    pads: Vec<(usize, usize)>,
}

impl ZeroPad {
    /// The op computing `pad` on `input`, if it pads an f32 tensor with zeros.
    pub fn replacing(pad: &Pad, input: &TypedFact) -> Option<ZeroPad> {
        let PadMode::Constant(value) = &pad.mode else {
            return None;
        };
        let zero = value.cast_to_scalar::<f32>().ok()? == 0.0;
        (zero && input.datum_type == f32::datum_type() && pad.pads.len() == input.rank()).then(
            || ZeroPad {
                pads: pad.pads.clone(),
            },
        )
    }
}

impl Op for ZeroPad {
    fn name(&self) -> StaticName {
        "OcrboxZeroPad".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("pads {:?}", self.pads)])
    }

    op_as_typed_op!();
}

impl EvalOp for ZeroPad {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        ensure!(shape.len() == self.pads.len() && !shape.is_empty());
        let out_shape: TVec<usize> = shape
            .iter()
            .zip(&self.pads)
            .map(|(d, (b, a))| d + b + a)
            .collect();
        let mut output = Tensor::zero::<f32>(&out_shape)?;
        let row = *shape.last().unwrap_or(&0);
        if row > 0 && input.len() > 0 {
            let view = input.try_as_plain_ram()?;
            let src = view.as_slice::<f32>()?;
            let mut out_view = output.try_as_plain_ram_mut()?;
            let dst = out_view.as_slice_mut::<f32>()?;
            // Strides of the output, in elements.
            let mut strides = vec![1usize; out_shape.len()];
            for ax in (0..out_shape.len() - 1).rev() {
                strides[ax] = strides[ax + 1] * out_shape[ax + 1];
            }
            let outer = &shape[..shape.len() - 1];
            let mut index = vec![0usize; outer.len()];
            for chunk in src.chunks_exact(row) {
                let at: usize = index
                    .iter()
                    .zip(&self.pads)
                    .zip(&strides)
                    .map(|((i, (before, _)), s)| (i + before) * s)
                    .sum::<usize>()
                    + self.pads[outer.len()].0;
                dst[at..at + row].copy_from_slice(chunk);
                // Next row: the last outer axis fastest.
                for ax in (0..outer.len()).rev() {
                    index[ax] += 1;
                    if index[ax] < outer[ax] {
                        break;
                    }
                    index[ax] = 0;
                }
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for ZeroPad {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut fact = inputs[0].without_value();
        ensure!(
            self.pads.len() == fact.rank(),
            "pads {:?} for rank {}",
            self.pads,
            fact.rank()
        );
        for (ax, (b, a)) in self.pads.iter().enumerate() {
            fact.shape.set(ax, fact.shape[ax].clone() + *b + *a);
        }
        Ok(tvec!(fact))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_like_the_definition() {
        let (c, h, w) = (2, 3, 4);
        let data: Vec<f32> = (1..=c * h * w).map(|v| v as f32).collect();
        let op = ZeroPad {
            pads: vec![(0, 1), (2, 0), (1, 3)],
        };
        let input = tensor1(&data).into_shape(&[c, h, w]).unwrap();
        let out = op
            .eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))
            .unwrap()
            .remove(0);
        assert_eq!(out.shape(), &[3, 5, 8]);
        let view = out.try_as_plain_ram().unwrap();
        let got = view.as_slice::<f32>().unwrap();
        for z in 0..3 {
            for y in 0..5 {
                for x in 0..8 {
                    let inside = z < c && (2..2 + h).contains(&y) && (1..1 + w).contains(&x);
                    let want = if inside {
                        data[(z * h + y - 2) * w + x - 1]
                    } else {
                        0.0
                    };
                    assert_eq!(got[(z * 5 + y) * 8 + x], want, "at {z} {y} {x}");
                }
            }
        }
    }
}
