//! A/B: rec plan analysed at a fixed width vs from a width-free decluttered graph (build time,
//! run time interleaved, output difference).
use std::io::Cursor;
use std::time::Instant;
use tract_onnx::prelude::*;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> TractResult<()> {
    let bytes = std::fs::read("models/rec.onnx")?;
    let graph = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_read(&mut Cursor::new(&bytes))?;
    let sym = graph.symbols.sym("W");
    let t = Instant::now();
    let free = graph
        .clone()
        .with_input_fact(
            0,
            f32::fact([1.into(), 3.into(), 48.into(), TDim::from(sym.clone())]).into(),
        )?
        .into_typed()?
        .into_decluttered()?;
    println!("width-free typed+decluttered once: {:.0} ms", ms(t));
    for w in [160usize, 320, 640, 1280] {
        let shape = [1, 3, 48, w];
        let t = Instant::now();
        let fixed = graph
            .clone()
            .with_input_fact(0, f32::fact(shape).into())?
            .into_optimized()?
            .into_runnable()?;
        let bf = ms(t);
        let t = Instant::now();
        let subs = [(sym.clone(), TDim::from(w as i64))].into_iter().collect();
        let freep = free
            .set_symbols(&subs)?
            .into_decluttered()?
            .into_optimized()?
            .into_runnable()?;
        let bs = ms(t);
        let data: Vec<f32> = (0..3 * 48 * w)
            .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
            .collect();
        let input = Tensor::from_shape(&shape, &data)?;
        let a = fixed
            .run(tvec!(input.clone().into()))?
            .remove(0)
            .into_tensor();
        let b = freep
            .run(tvec!(input.clone().into()))?
            .remove(0)
            .into_tensor();
        let diff = a
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .iter()
            .zip(
                b.to_plain_array_view::<f32>()?
                    .iter()
                    .copied()
                    .collect::<Vec<_>>(),
            )
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let (mut tf, mut ts) = (vec![], vec![]);
        for _ in 0..8 {
            let t = Instant::now();
            fixed.run(tvec!(input.clone().into()))?;
            tf.push(ms(t));
            let t = Instant::now();
            freep.run(tvec!(input.clone().into()))?;
            ts.push(ms(t));
        }
        tf.sort_by(f64::total_cmp);
        ts.sort_by(f64::total_cmp);
        println!("w {w}: build fixed {bf:.0} / width-free {bs:.0} ms; run median {:.1} / {:.1} ms; max |diff| {diff:.2e}", tf[4], ts[4]);
    }
    Ok(())
}
