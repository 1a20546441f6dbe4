//! Cost of each model input shape under tract: plan build time, run time and memory per plan.
//! The bucket lists in src/ocr/detect.rs and src/ocr/recognize.rs are chosen from this table
//! (see scripts/bench-buckets.sh, which also weighs it by the line widths of real pages).
//!
//!     cargo bench --bench shapes [-- rec|det] [-- --runs N]
//!
//! Prints one tab-separated row per shape: model, height, width, build ms, median run ms,
//! RSS growth MiB.

use std::time::Instant;

use ocrbox::ocr::models::{Model, ModelFiles, Shapes};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn measure(model: &Model, name: &str, h: usize, w: usize, runs: usize) {
    let shape = [1, 3, h, w];
    let input = || vec![0.5f32; 3 * h * w];
    let rss = rss_mib();
    let t = Instant::now();
    model.run(shape, input()).expect("first run");
    let first = t.elapsed().as_secs_f64() * 1e3;
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            model.run(shape, input()).expect("run");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let run = times[times.len() / 2];
    println!(
        "{name}\t{h}\t{w}\t{:.0}\t{run:.2}\t{:.1}",
        first - run,
        rss_mib() - rss
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(7);
    let want =
        |m: &str| !args.iter().any(|a| a == "rec" || a == "det") || args.iter().any(|a| a == m);
    let files = ModelFiles::embedded(Default::default());
    println!("model\theight\twidth\tbuild_ms\trun_ms\trss_mib");
    if want("rec") {
        let rec = Model::load(
            "rec",
            files.rec.clone(),
            Shapes::FreeWidth { height: 48 },
            usize::MAX,
        )
        .expect("rec model");
        for w in [96, 160, 240]
            .into_iter()
            .chain((320..=1280).step_by(80))
            .chain([1600, 2048, 2560, 3200])
        {
            measure(&rec, "rec", 48, w, runs);
        }
    }
    if want("det") {
        let det =
            Model::load("det", files.det.clone(), Shapes::Each, usize::MAX).expect("det model");
        for (h, w) in [
            (128, 384),
            (256, 256),
            (256, 512),
            (384, 384),
            (512, 512),
            (512, 640),
            (640, 640),
            (640, 960),
            (736, 960),
            (768, 768),
            (960, 736),
            (960, 960),
        ] {
            measure(&det, "det", h, w, runs.min(5));
        }
    }
}
