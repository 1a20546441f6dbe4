//! Where one optimised plan spends its time, by op kind and by node, and (with `SIZES=1`) its
//! largest activations: `cargo run --release --example opprofile -- models/rec.onnx 48 320`.
//! `THREADS=N` runs the plan on tract's executor with N threads (one by default).
//! tract's knobs (`TRACT_DISABLE_DIRECT_SPATIAL=1`, ...) apply through the environment.
use std::collections::HashMap;
use std::time::Instant;

use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};

mod common;

const RUNS: usize = 5;

fn main() -> TractResult<()> {
    let (file, shape, _) = common::args("opprofile MODEL.onnx HEIGHT WIDTH", 0);
    let plan = common::plan(&file, shape)?;
    if std::env::var_os("SIZES").is_some() {
        let mut sizes: Vec<(usize, String)> = plan
            .model()
            .nodes()
            .iter()
            .filter_map(|n| {
                let fact = &n.outputs[0].fact;
                let elems: usize = fact.shape.as_concrete()?.iter().product();
                let what = format!("{} {} {:?}", n.op().name(), n.name, fact.shape);
                Some(((elems * 4) >> 20, what))
            })
            .collect();
        sizes.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (mib, what) in sizes.iter().take(20) {
            println!("{mib:>5} MiB {what}");
        }
    }
    let data: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
        .collect();
    let input = Tensor::from_shape(&shape, &data)?;
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    let mut by_node: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    let threads: usize = std::env::var("THREADS").map_or(Ok(1), |n| n.parse())?;
    let pool = if threads > 1 {
        Executor::multithread(threads)
    } else {
        Executor::SingleThread
    };
    // The first run is a warm-up and not counted.
    for run in 0..=RUNS {
        let mut state = SimpleState::new(&plan)?;
        let start = Instant::now();
        let inputs = tvec!(input.clone().into());
        multithread_tract_scope(pool.clone(), || {
            state.run_plan_with_eval(inputs, |ctx, st, node, inputs| {
                let t = Instant::now();
                let out = eval(ctx, st, node, inputs);
                if run > 0 {
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let op = by_op.entry(node.op().name().to_string()).or_default();
                    op.0 += ms;
                    op.1 += 1;
                    *by_node
                        .entry(format!("{} {}", node.op().name(), node.name))
                        .or_default() += ms;
                }
                out
            })
        })?;
        if run > 0 {
            total += start.elapsed().as_secs_f64() * 1e3;
        }
    }
    let runs = RUNS as f64;
    println!("total {:.1} ms/run", total / runs);
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (op, (ms, n)) in ops.iter().take(25) {
        println!("{:>8.2} ms {:>5} {op}", ms / runs, n / RUNS);
    }
    let mut nodes: Vec<_> = by_node.into_iter().collect();
    nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("-- slowest nodes");
    for (node, ms) in nodes.iter().take(25) {
        println!("{:>8.2} ms {node}", ms / runs);
    }
    Ok(())
}
