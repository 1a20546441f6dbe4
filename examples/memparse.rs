//! Memory of one model, step by step: parse, optimised plan, one run (with mimalloc, as the
//! binary; purges forced with `mi_collect` so the figures are what stays in use).
//!
//! `cargo run --release --example memparse -- models/det-small.onnx 960 960`
//! prints RssAnon and the high-water mark (VmHWM, reset before each step) in KiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tract_onnx::prelude::*;

mod common;

fn report(step: &str) {
    println!(
        "{step:<8} RssAnon {:>7} KiB  VmHWM {:>7} KiB",
        common::kib_in_use("RssAnon"),
        common::kib_in_use("VmHWM")
    );
    // Writing 5 resets the high-water mark (proc(5), clear_refs).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> TractResult<()> {
    let (file, shape, _) = common::args("memparse MODEL.onnx HEIGHT WIDTH", 0);
    report("start");
    let bytes = std::fs::read(file)?;
    let graph = common::parse(&bytes)?;
    drop(bytes);
    report("parsed");
    let plan = graph
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()?;
    report("plan");
    let out = plan.run(tvec!(Tensor::zero::<f32>(&shape)?.into()))?;
    drop(out);
    report("run");
    Ok(())
}
