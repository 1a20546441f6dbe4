//! The checks behind the fuzz targets, shared with the regression test
//! (`tests/fuzz_regressions.rs` includes this file with `#[path]`), so a saved crash input is
//! replayed through exactly what the fuzzer ran.
//!
//! `multipart`: `Content-Type` + body bytes → the server's multipart parsing
//! (`ocrbox::http::multipart::parse_image`: multer with our size limits, reading the one
//! `image` field). Input layout (see `fuzz/gen_seeds.py`):
//! - byte 0: how the body is cut into stream chunks: 0 = one chunk, n = chunks of n bytes;
//! - byte 1: bits 0-1 pick the image limit (16 B, 256 B, 4 KiB, 20 MiB = the server's default);
//!   bit 7 makes the stream end with a read error (a client that went away);
//! - then the `Content-Type` value up to the first `\n`, then the body.
//!
//! Invariants: no panic; only 400 (BadRequest) or 413 (TooLarge) errors; an image never
//! exceeds the limit; 413 only when the body itself is over the limit; the same bytes give the
//! same result whether they arrive in one chunk or many.
//!
//! `decode`: upload bytes (an image, a PDF, a multi-page TIFF) → `sniff` → `Document::open`
//! with the server's limits (`Limits::default()`, what `ocrbox serve` uses: the 400/413 checks
//! before queueing) → every `page(i)` → the model inputs detection, classification and
//! recognition build from the page (`ocr::model_inputs`, which calls each stage's own
//! `input()`: exactly the tensors the engine feeds its models; no model runs, inference is far
//! too slow to fuzz).
//!
//! Invariants: no panic, no OOM, no hang; a document has 1 to `max_pages` pages; a decoded page
//! has pixels, its sides within the working size and its area within the pixel limit, and is
//! no larger than its uploaded size; nothing `sniff` refuses is opened, and it fails the same
//! way; every tensor has the length of its shape and only finite values.

#![allow(dead_code)] // each includer uses part of it

use std::sync::OnceLock;

use bytes::Bytes;
use ocrbox::http::error::ApiError;
use ocrbox::http::multipart::parse_image;
use ocrbox::ocr::decode::{self, DecodeError};
use ocrbox::ocr::{Document, Limits};

const IMAGE_LIMITS: [u64; 4] = [16, 256, 4096, 20 << 20];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// A multipart outcome reduced to what a client sees: the image, or the error's status.
#[derive(Debug, PartialEq)]
pub enum Upload {
    /// The input is not in the harness's layout, or its `Content-Type` is not a valid header
    /// value (hyper refuses it before our code runs).
    Skipped,
    Image(Bytes),
    BadRequest(String),
    TooLarge,
}

impl Upload {
    fn same_status(&self, other: &Upload) -> bool {
        match (self, other) {
            (Upload::Image(a), Upload::Image(b)) => a == b,
            (Upload::BadRequest(_), Upload::BadRequest(_)) => true,
            (Upload::TooLarge, Upload::TooLarge) => true,
            _ => false,
        }
    }
}

fn parse(content_type: &str, body: &[u8], chunk: usize, fail: bool, max_image: u64) -> Upload {
    let step = if chunk == 0 { body.len().max(1) } else { chunk };
    let mut chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(step)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if fail {
        chunks.push(Err(std::io::Error::other("connection reset")));
    }
    let stream = futures_util::stream::iter(chunks);
    match runtime().block_on(parse_image(content_type, stream, max_image)) {
        Ok(image) => {
            assert!(
                image.len() as u64 <= max_image,
                "image of {} bytes over the {max_image} limit",
                image.len()
            );
            assert!(image.len() <= body.len(), "image longer than the body");
            Upload::Image(image)
        }
        Err(ApiError::BadRequest(detail)) => {
            assert!(!detail.is_empty());
            Upload::BadRequest(detail)
        }
        Err(ApiError::TooLarge { limit }) => {
            assert_eq!(limit, max_image);
            assert!(
                body.len() as u64 > max_image,
                "413 for a {}-byte body under the {max_image} limit",
                body.len()
            );
            Upload::TooLarge
        }
        Err(other) => panic!("unexpected error from multipart parsing: {other:?}"),
    }
}

/// Runs one `multipart` fuzz input; panics when an invariant breaks.
pub fn multipart(data: &[u8]) -> Upload {
    let [chunk, flags, rest @ ..] = data else {
        return Upload::Skipped;
    };
    let max_image = IMAGE_LIMITS[usize::from(flags & 3)];
    let fail = flags & 0x80 != 0;
    let (ct, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    // hyper's `HeaderValue::to_str`: visible ASCII, space and tab; the server answers 400 to
    // anything else before parsing.
    if !ct.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        return Upload::Skipped;
    }
    let ct = std::str::from_utf8(ct).expect("ASCII");
    let got = parse(ct, body, usize::from(*chunk), fail, max_image);
    if *chunk != 0 && !fail {
        let whole = parse(ct, body, 0, false, max_image);
        assert!(
            got.same_status(&whole),
            "result depends on how the body is chunked: {got:?} in chunks of {chunk}, \
             {whole:?} in one"
        );
    }
    got
}

/// Runs one `decode` fuzz input (an image, a PDF or a multi-page TIFF: everything an upload may
/// be) through `Document`, page by page; panics when an invariant breaks. Returns the first
/// page's decoded size or the error shown to the client.
pub fn decode(data: &[u8]) -> Result<(u32, u32), DecodeError> {
    let limits = Limits::default();
    let sniffed = decode::sniff(data);
    let result = Document::open(data, &limits).and_then(|doc| {
        assert!((1..=limits.max_pages).contains(&doc.pages()));
        let mut first = None;
        for i in 0..doc.pages() {
            let page = doc.page(i)?;
            let img = &page.image;
            let (w, h) = img.dimensions();
            assert!(w >= 1 && h >= 1, "empty image {w}x{h}");
            assert!(
                w.max(h) <= limits.work_side,
                "{w}x{h} over the working size"
            );
            assert!(u64::from(w) * u64::from(h) <= limits.max_pixels);
            assert!(
                w <= page.width && h <= page.height,
                "uploaded size below the decoded one"
            );
            assert!(page.width.max(page.height) <= limits.max_side);
            assert_eq!(img.as_raw().len(), w as usize * h as usize * 3);
            // The detector's input, 1 to 3 classifier windows, the strip upright and turned.
            let shapes = ocrbox::ocr::model_inputs(img);
            assert!((4..=6).contains(&shapes.len()), "{shapes:?}");
            first.get_or_insert((w, h));
        }
        Ok(first.expect("at least one page"))
    });
    if let Err(s) = &sniffed {
        let e = result.as_ref().expect_err("opened what sniff refused");
        assert_eq!(
            std::mem::discriminant(s),
            std::mem::discriminant(e),
            "sniff said {s}, open said {e}"
        );
    }
    if let Err(e) = &result {
        assert!(!matches!(e, DecodeError::Empty) || data.is_empty());
        assert!(!e.to_string().is_empty());
    }
    result
}
