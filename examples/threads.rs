//! One plan on one thread against tract's rayon executor on N, interleaved (medians of RUNS):
//! `cargo run --release --example threads -- models/det-small.onnx 960 960 2 16`
//! (model, height, width, threads, matmul panel threshold).
use std::io::Cursor;
use std::time::Instant;

use tract_linalg::multithread::{multithread_tract_scope, set_threading_panel_threshold, Executor};
use tract_onnx::prelude::*;

const RUNS: usize = 9;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, h, w, n, panels] = &args[..] else {
        eprintln!("usage: threads MODEL.onnx HEIGHT WIDTH THREADS PANELS");
        std::process::exit(2);
    };
    let shape = [1, 3, h.parse()?, w.parse()?];
    set_threading_panel_threshold(panels.parse()?);
    let plan = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_read(&mut Cursor::new(std::fs::read(file)?))?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()?;
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
    println!(
        "{file} {h}x{w}: 1 thread {m1:.1} ms, {n} threads {mn:.1} ms ({:.2}x), panels {panels}",
        m1 / mn
    );
    Ok(())
}
