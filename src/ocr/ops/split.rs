//! A convolution of a channel concatenation, computed as the sum of one convolution per part:
//! `conv(concat(a, b), W) = conv(a, W[:, ..ca]) + conv(b, W[:, ca..])`. Same products, but the
//! concatenation (a copy of its inputs) is never made. The detector's stem concatenates two
//! 24-channel maps at half the input's size and convolves them with stride 2: at 960² that copy
//! is 42 MiB and the highest point of the run's live heap (`cargo run --release --example
//! heapnodes -- models/det-small.onnx 960 960`: 73.8 MiB with it, 59.7 without). At 960×736
//! (`opprofile`, five interleaved runs of 5) the small detector took 605–762 ms (median 622)
//! against 605–841 (698), the tiny one 288–323 against 339–394: the copy cost 28 ms, and the
//! two halves run no slower than the whole. On its own it did not move the server's or the
//! CLI's peak RSS (soak 319 / 312 MiB, a CLI page 231 / 228 MiB, within their spread): freed
//! big blocks are kept for reuse up to a bound (`src/alloc/blocks.rs`), which sets that peak;
//! the lighter detection let that bound come down (see `alloc`).
//! The recogniser's stem does the same at 48 px, but its copy is small and, split, its halves
//! ran slower there: [`super::optimise`] splits no line strip's convolution (`STRIP_ROWS`).
//! Where the CPU has AVX2 and FMA, [`super::conv`] takes these convolutions first and reads
//! the concatenation's parts itself; this split is for the other machines (an aarch64 board,
//! an x86_64 one without AVX2).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::cnn::KernelFormat;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Splits every plain strided convolution whose image is a channel concatenation read by it
/// alone. A strided one only: its output is a fraction of the concatenation, so the copy is
/// most of the memory there, and tract runs it as direct loops however many channels it has.
/// The detector head's stride-1 convolution of four 96-channel maps is left whole: split, its
/// parts ran as four direct convolutions (85 ms at 960×736) where tract runs the whole as one
/// matrix product (47 ms, +12 ms of padding, +7 ms for the copy), and the run's peak stays
/// where it is (59.7 MiB, at the upsampling before that copy).
pub fn split(model: &mut TypedModel) -> TractResult<()> {
    super::patch_each(model, patch)
}

/// The patch that splits node `id`, if it is such a convolution.
fn patch(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let Some((conv, [image, kernel, bias])) = super::conv_at(model, id) else {
        return Ok(None);
    };
    let node = &model.nodes[id];
    let concat = &model.nodes[image.node];
    let channel_axis = match conv.pool_spec.data_format {
        DataFormat::NCHW => 1,
        DataFormat::CHW => 0,
        _ => return Ok(None),
    };
    let strided = conv.pool_spec.strides().iter().any(|&s| s > 1);
    let plain = strided
        && conv.group == 1
        && conv.q_params.is_none()
        && conv.kernel_fmt == KernelFormat::OIHW
        && concat
            .op_as::<TypedConcat>()
            .is_some_and(|c| c.axis == channel_axis)
        && model.outlet_successors(image).len() == 1
        && !model.output_outlets()?.contains(&image);
    if !plain {
        return Ok(None);
    }
    let (Some(weights), Some(bias_value)) = (
        model.outlet_fact(kernel)?.konst.clone(),
        model.outlet_fact(bias)?.konst.clone(),
    ) else {
        return Ok(None);
    };
    if weights.rank() != 4 {
        return Ok(None);
    }
    let mut channels = Vec::new();
    for part in &concat.inputs {
        let Some(c) = model.outlet_fact(*part)?.shape[channel_axis].as_i64() else {
            return Ok(None);
        };
        channels.push(c as usize);
    }
    if channels.iter().sum::<usize>() != weights.shape()[1] {
        return Ok(None);
    }
    let mut patch = TypedModelPatch::default();
    let zero = Tensor::zero_dt(bias_value.datum_type(), bias_value.shape())?;
    let mut sum: Option<OutletId> = None;
    let mut start = 0;
    for (i, (part, c)) in concat.inputs.iter().zip(channels).enumerate() {
        let input = patch.tap_model(model, *part)?;
        let w = patch.add_const(
            format!("{}.split{i}.kernel", node.name),
            weights.slice(1, start, start + c)?,
        )?;
        // The bias is added once, by the first part.
        let b = if i == 0 {
            patch.tap_model(model, bias)?
        } else {
            patch.add_const(format!("{}.split{i}.bias", node.name), zero.clone())?
        };
        let mut op = conv.clone();
        op.pool_spec.input_channels = c;
        let out = patch.wire_node(format!("{}.split{i}", node.name), op, &[input, w, b])?[0];
        sum = Some(match sum {
            None => out,
            Some(s) => patch.wire_node(
                format!("{}.split{i}.sum", node.name),
                math::add(),
                &[s, out],
            )?[0],
        });
        start += c;
    }
    let Some(sum) = sum else {
        return Ok(None);
    };
    patch.shunt_outside(model, OutletId::new(id, 0), sum)?;
    Ok(Some(patch))
}
