//! Replays the inputs the fuzz targets (`fuzz/`) once crashed, hung or blew up on, kept in
//! `tests/fixtures/fuzz/<target>/`, through the same checks the fuzzer ran
//! (`fuzz/harness.rs`): each must now give a clean error or a valid result, quickly.

use crate::harness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Generous: a release build does each in well under a second; this only catches hangs.
const PER_INPUT: Duration = Duration::from_secs(30);

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|x| x != "md"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

fn replay<T: std::fmt::Debug>(target: &str, run: impl Fn(&[u8]) -> T) {
    for (path, data) in inputs(target) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data)))
            .unwrap_or_else(|_| panic!("{target}/{name}: panicked (see above)"));
        let took = t.elapsed();
        eprintln!("{target}/{name}: {outcome:?} in {took:.2?}");
        assert!(took < PER_INPUT, "{target}/{name}: took {took:?}");
    }
}

#[test]
fn decode_inputs_fail_cleanly() {
    replay("decode", |data| {
        harness::decode(data).map_err(|e| e.to_string())
    });
}

#[test]
fn multipart_inputs_fail_cleanly() {
    replay("multipart", harness::multipart);
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The decoder refuses a header over the side limit itself; the client used to read
/// "image too large: 0x0 pixels (limit 0 pixels, 0 per side)".
#[test]
fn over_side_limit_reports_the_real_size() {
    let err = harness::decode(&fixture("decode/png-20001-wide-header.png")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "image too large: 20001x3 pixels (limit 50000000 pixels, 20000 per side)"
    );
}

/// 6 KB of PNG is 49 megapixels: accepted (under the 50 MP limit) and shrunk to the working
/// size straight away.
#[test]
fn tiny_file_huge_image_is_shrunk() {
    let got = harness::decode(&fixture("decode/png-7000x7000-1bit-6KB.png")).unwrap();
    assert_eq!(got, (4096, 4096));
}
