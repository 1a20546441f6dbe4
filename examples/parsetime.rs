//! Parsing an ONNX file against building one plan from it (why no parsed graph is kept):
//! `cargo run --release --example parsetime -- models/det-small.onnx 960 960`.
use std::time::Instant;

use tract_onnx::prelude::*;

mod common;

fn main() -> TractResult<()> {
    let (file, shape, _) = common::args("parsetime MODEL.onnx HEIGHT WIDTH", 0);
    let bytes = std::fs::read(file)?;
    for _ in 0..3 {
        let t = Instant::now();
        let graph = common::parse(&bytes)?;
        let parse = t.elapsed();
        let t = Instant::now();
        graph
            .with_input_fact(0, f32::fact(shape).into())?
            .into_optimized()?
            .into_runnable()?;
        println!("parse {parse:.1?}, plan {:.1?}", t.elapsed());
    }
    Ok(())
}
