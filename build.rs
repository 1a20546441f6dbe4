//! Records the target triple and the embedded models' digests for `ocrbox --version`.

use sha2::{Digest, Sha256};

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=OCRBOX_BUILD_TARGET={target}");
    let mut parts = Vec::new();
    for name in [
        "det-tiny.onnx",
        "det-small.onnx",
        "rec.onnx",
        "ppocrv6_dict.txt",
        "cls.onnx",
    ] {
        let path = format!("models/{name}");
        println!("cargo:rerun-if-changed={path}");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let digest = Sha256::digest(&bytes);
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        parts.push(format!("{} {hex}", name.split('.').next().unwrap_or(name)));
    }
    println!("cargo:rustc-env=OCRBOX_BUILD_MODELS={}", parts.join(", "));
}
