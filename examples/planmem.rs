//! RSS that each plan adds, with the plans of a model sharing their packed weights as the
//! server's do: `MIMALLOC_PURGE_DELAY=0 cargo run --release --example planmem` (a zero purge
//! delay so freed memory leaves RssAnon at once; figures after `mi_collect`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ocrbox::ocr::models::{Model, ModelFiles, Shapes};

mod common;

/// RssAnon in MiB once mimalloc has returned what is free.
fn anon_mib() -> f64 {
    common::kib_in_use("RssAnon") as f64 / 1024.0
}

fn main() {
    let files = ModelFiles::embedded(Default::default());
    let start = anon_mib();
    let load = |name, bytes, shapes| Model::load(name, bytes, shapes, usize::MAX).expect(name);
    let det = load("det", files.det.clone(), Shapes::Each);
    let cls = load("cls", files.cls.clone(), Shapes::Each);
    let rec = load("rec", files.rec.clone(), Shapes::FreeWidth { height: 48 });
    let mut last = anon_mib();
    println!("parsed: +{:.1} MiB", last - start);
    let mut plan = |name: &str, model: &Model, h: usize, w: usize| {
        model.run([1, 3, h, w], vec![0.5; 3 * h * w]).expect("run");
        let now = anon_mib();
        println!(
            "{name} {h}×{w}: +{:.1} MiB (total {:.1})",
            now - last,
            now - start
        );
        last = now;
    };
    for (h, w) in [(640, 960), (960, 512), (960, 960), (128, 512), (128, 768)] {
        plan("det", &det, h, w);
    }
    plan("cls", &cls, 48, 192);
    for w in [
        160, 240, 320, 480, 640, 800, 960, 1280, 1600, 2048, 2560, 3200,
    ] {
        plan("rec", &rec, 48, w);
    }
    for (name, model) in [("det", &det), ("cls", &cls), ("rec", &rec)] {
        let (n, kib) = (model.cached_plans(), model.cached_bytes() >> 10);
        println!("{name}: {n} plans, {kib} KiB as the budget counts them");
    }
}
