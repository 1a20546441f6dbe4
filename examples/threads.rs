//! One plan on one thread against tract's rayon executor on N, interleaved (medians of RUNS):
//! `cargo run --release --example threads -- models/det-small.onnx 960 960 2 16`
//! (model, height, width, threads, matmul panel threshold).
use std::time::Instant;

use tract_linalg::multithread::{multithread_tract_scope, set_threading_panel_threshold, Executor};
use tract_onnx::prelude::*;

mod common;

const RUNS: usize = 9;

fn main() -> TractResult<()> {
    let (file, shape, rest) = common::args("threads MODEL.onnx HEIGHT WIDTH THREADS PANELS", 2);
    let (n, panels) = (&rest[0], &rest[1]);
    set_threading_panel_threshold(panels.parse()?);
    let plan = common::plan(&file, shape)?;
    let input: TValue = Tensor::zero::<f32>(&shape)?.into();
    let pool = Executor::multithread(n.parse()?);
    let (mut one, mut many) = (vec![], vec![]);
    for run in 0..=RUNS {
        let t = Instant::now();
        let a = plan.run(tvec!(input.clone()))?;
        let t1 = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let b = multithread_tract_scope(pool.clone(), || plan.run(tvec!(input.clone())))?;
        let tn = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(a[0].shape(), b[0].shape());
        if run > 0 {
            one.push(t1);
            many.push(tn);
        }
    }
    one.sort_by(f64::total_cmp);
    many.sort_by(f64::total_cmp);
    let (m1, mn) = (one[RUNS / 2], many[RUNS / 2]);
    let [_, _, h, w] = shape;
    println!(
        "{file} {h}x{w}: 1 thread {m1:.1} ms, {n} threads {mn:.1} ms ({:.2}x), panels {panels}",
        m1 / mn
    );
    Ok(())
}
