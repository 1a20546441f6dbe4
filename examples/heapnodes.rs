//! Live heap, counted by a wrapping allocator, while one model's plan is built and run: the
//! build's peak, then the run's peak and the nodes at which the heap is highest.
//!
//! `cargo run --release --example heapnodes -- models/det-small.onnx 960 960` (a 960² page's
//! detection peaks at 60 MiB above its input, at the head's upsampling; 74 MiB, at the stem's
//! `Concat`, before `src/ocr/ops/split.rs`). The plan is built as the engine builds it.
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};

mod common;

/// mimalloc, counting the bytes in use and their highest value.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is passed to mimalloc unchanged; only counters are updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        MI.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        MI.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        MI.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n > l.size() {
            grew(n - l.size());
        } else {
            LIVE.fetch_sub(l.size() - n, Relaxed);
        }
        MI.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// MiB above `base` (negative when below).
fn mib(v: usize, base: usize) -> f64 {
    (v as f64 - base as f64) / 1048576.0
}

/// Starts a new peak from the current heap; returns the heap.
fn reset_peak() -> usize {
    let now = LIVE.load(Relaxed);
    PEAK.store(now, Relaxed);
    now
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, h, w] = &args[..] else {
        panic!("usage: heapnodes MODEL.onnx HEIGHT WIDTH");
    };
    let (h, w): (usize, usize) = (h.parse()?, w.parse()?);

    // The file is read inside the build, as the engine re-reads its embedded bytes.
    let base = reset_peak();
    let plan = common::plan(file, [1, 3, h, w])?;
    println!(
        "plan build: peak {:.1} MiB, plan kept {:.1} MiB (file not counted)",
        mib(PEAK.load(Relaxed), base),
        mib(LIVE.load(Relaxed), base)
    );

    let input: TValue = Tensor::from_shape(&[1, 3, h, w], &vec![0.5f32; 3 * h * w])?.into();
    let mut state = SimpleState::new(&plan)?;
    let base = reset_peak();
    let mut rows = vec![];
    state.run_plan_with_eval(tvec!(input), |ctx, op_state, node, inputs| {
        let before = reset_peak();
        let out = eval(ctx, op_state, node, inputs);
        let made: usize = out.as_ref().map_or(0, |o| {
            o.iter().map(|t| t.len() * t.datum_type().size_of()).sum()
        });
        rows.push((PEAK.load(Relaxed), before, made, node.to_string()));
        out
    })?;
    let peak = rows.iter().map(|r| r.0).max().unwrap_or(base);
    println!(
        "run: peak {:.1} MiB above the heap with its input",
        mib(peak, base)
    );
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    println!("  peak  before  output  node");
    for (peak, before, made, node) in rows.iter().take(12) {
        println!(
            "{:6.1} {:7.1} {:7.1}  {node}",
            mib(*peak, base),
            mib(*before, base),
            mib(*made, 0)
        );
    }
    Ok(())
}
