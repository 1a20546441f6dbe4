//! Hostile-client tests against the real `ocrbox serve` binary over real HTTP: malformed and
//! oversized uploads, bad ids and keys, slow clients, and secrets in the database and logs.
//!
//! Every rejected or failed request must answer `{"status":"fail","detail":...}` (or a task
//! result with `"status":"fail"` and a reason), leave the server up, and never cost a credit.

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;

/// Asserts a `{"status":"fail","detail":"..."}` answer with `expected` status.
fn assert_fail(what: &str, status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(body["status"], "fail", "{what}: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(!detail.trim().is_empty(), "{what}: no detail in {body}");
}

/// Waits (briefly) until the key's balance is `want`: reservations are released just after the
/// task result is published.
fn assert_balance(c: &reqwest::blocking::Client, srv: &Server, key: &str, want: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (solves, _) = balance(c, srv, key);
        if solves == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: balance {solves}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Submits a file named `name`; returns the HTTP status, body and (if accepted) final result.
fn submit_named(
    c: &reqwest::blocking::Client,
    srv: &Server,
    key: &str,
    bytes: Vec<u8>,
    name: &str,
) -> (u16, Value, Option<Value>) {
    let part = Part::bytes(bytes).file_name(name.to_string());
    let form = Form::new().part("image", part);
    let (status, body) = json(
        c.post(srv.url(&format!("/api/ocr/solve?api={key}")))
            .multipart(form)
            .send()
            .unwrap(),
    );
    let result = if status == 200 {
        assert_eq!(body["status"], "ok", "{body}");
        let task = body["task_id"].as_str().unwrap().to_string();
        Some(wait_result(c, srv, key, &task))
    } else {
        None
    };
    (status, body, result)
}

/// A bad upload: refused with 400, or accepted and then failed with a reason. Never charged.
fn expect_rejected(
    c: &reqwest::blocking::Client,
    srv: &Server,
    key: &str,
    what: &str,
    bytes: Vec<u8>,
    name: &str,
) {
    let (before, _) = balance(c, srv, key);
    let (status, body, result) = submit_named(c, srv, key, bytes, name);
    match &result {
        None => assert_fail(what, status, &body, 400),
        Some(r) => {
            assert_eq!(r["status"], "fail", "{what}: accepted and succeeded: {r}");
            let reason = r["result"].as_str().unwrap_or_default();
            assert!(!reason.trim().is_empty(), "{what}: no reason in {r}");
            assert!(r["time"].is_number(), "{what}: {r}");
        }
    }
    eprintln!("{what}: {status} {body} -> {result:?}");
    assert_balance(c, srv, key, before, what);
}

/// An unusual but valid image: it may be read or fail, but is charged exactly when it succeeds.
fn expect_fair(
    c: &reqwest::blocking::Client,
    srv: &Server,
    key: &str,
    what: &str,
    bytes: Vec<u8>,
    name: &str,
) {
    let (before, _) = balance(c, srv, key);
    let (status, body, result) = submit_named(c, srv, key, bytes, name);
    eprintln!("{what}: {status} {body} -> {result:?}");
    let charged = match result {
        None => {
            assert_fail(what, status, &body, 400);
            0
        }
        Some(r) if r["status"] == "ok" => 1,
        Some(r) => {
            assert_eq!(r["status"], "fail", "{what}: {r}");
            assert!(!r["result"].as_str().unwrap_or_default().is_empty());
            0
        }
    };
    assert_balance(c, srv, key, before - charged, what);
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A PNG whose (valid, CRC-correct) header claims `w`×`h` RGB pixels, with a tiny IDAT.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes (stored block).
    png_chunk(
        &mut out,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xFB, 0xFF, 0, 0, 0, 0, 0, 0x04, 0, 0x01,
        ],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

fn animated_gif() -> Vec<u8> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame, Rgba, RgbaImage};
    let line = image::load_from_memory(&line_png()).unwrap().to_rgba8();
    let mut buf = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut buf);
        enc.set_repeat(Repeat::Infinite).unwrap();
        let blank = RgbaImage::from_pixel(line.width(), line.height(), Rgba([255, 255, 255, 255]));
        for img in [line, blank] {
            enc.encode_frame(Frame::from_parts(
                img,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .unwrap();
        }
    }
    buf
}

/// Sends raw bytes and returns everything the server answers until it closes (or 10 s pass).
fn raw_request(srv: &Server, head: &str, body: &[u8]) -> String {
    let addr = srv.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Status code and JSON body of a raw HTTP/1.1 response.
fn parse_raw(resp: &str) -> (u16, Value) {
    let status: u16 = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {resp:?}"));
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    let json = serde_json::from_str(&body[start..end]).unwrap_or(Value::Null);
    (status, json)
}

fn start(extra: &[&str]) -> (TempDir, Server, String) {
    let dir = TempDir::new();
    let key = add_key(&dir.db(), 1000);
    let srv = Server::start(&dir.db(), extra);
    (dir, srv, key)
}

#[test]
fn bad_images_are_refused_and_never_charged() {
    let (dir, srv, key) = start(&["--workers", "1"]);
    let c = client();

    let png = line_png();
    let jpg = fixture("AABTRE.jpg");
    let mut noise = vec![0u8; 4096];
    getrandom_fill(&mut noise);
    let refused = [
        Case::new("zero bytes", Vec::new(), "empty.png"),
        Case::new("random bytes named .png", noise, "noise.png"),
        Case::new(
            "text named .png",
            b"hello world, not an image".to_vec(),
            "x.png",
        ),
        Case::new("truncated PNG", png[..png.len() / 2].to_vec(), "half.png"),
        Case::new("truncated JPEG", jpg[..jpg.len() / 2].to_vec(), "half.jpg"),
        Case::new("PNG signature only", png[..8].to_vec(), "sig.png"),
        Case::new(
            "PNG claiming 100000x100000",
            png_claiming(100_000, 100_000),
            "huge.png",
        ),
        Case::new(
            "PNG claiming 20000x20000 (400 Mpx)",
            png_claiming(20_000, 20_000),
            "big.png",
        ),
        Case::new("PNG claiming 0x0", png_claiming(0, 0), "zero.png"),
    ];
    let t = Instant::now();
    for case in refused {
        expect_rejected(&c, &srv, &key, case.what, case.bytes, case.name);
    }
    // Huge headers are refused from the header, never decoded.
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "refusals took {:?}",
        t.elapsed()
    );

    // Unusual but valid images: charged exactly when read.
    let line = image::load_from_memory(&png).unwrap();
    let one =
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, image::Rgb([0, 0, 0])));
    let mut rgba = line.to_rgba8();
    for (x, _, p) in rgba.enumerate_pixels_mut() {
        p.0[3] = if x % 2 == 0 { 255 } else { 0 };
    }
    let png_of = |img: image::DynamicImage| encode(&img, image::ImageFormat::Png);
    let fair = [
        Case::new("1x1 PNG", png_of(one.clone()), "one.png"),
        Case::new(
            "1x1 JPEG",
            encode(&one, image::ImageFormat::Jpeg),
            "one.jpg",
        ),
        Case::new("animated GIF", animated_gif(), "anim.gif"),
        Case::new("16-bit RGB PNG", png_of(line.to_rgb16().into()), "16.png"),
        Case::new(
            "16-bit gray PNG",
            png_of(line.to_luma16().into()),
            "g16.png",
        ),
        Case::new("grayscale PNG", png_of(line.to_luma8().into()), "g.png"),
        Case::new("RGBA PNG with alpha", png_of(rgba.into()), "a.png"),
        Case::new(
            "gray+alpha PNG",
            png_of(line.to_luma_alpha8().into()),
            "la.png",
        ),
        Case::new("BMP", encode(&line, image::ImageFormat::Bmp), "x.bmp"),
        Case::new("PNG named .jpg", png.clone(), "liar.jpg"),
    ];
    for case in fair {
        expect_fair(&c, &srv, &key, case.what, case.bytes, case.name);
    }
    // CMYK JPEG (Adobe, inverted, as Photoshop and Pillow write it; image's encoder cannot
    // write CMYK, so it is a fixture): read, not refused.
    let (before, _) = balance(&c, &srv, &key);
    let (status, body, result) =
        submit_named(&c, &srv, &key, fixture("cmyk_line_001.jpg"), "cmyk.jpg");
    assert_eq!(status, 200, "CMYK JPEG: {body}");
    let r = result.unwrap();
    assert!(
        r["result"].as_str().unwrap().contains(LINE_WORDS),
        "CMYK JPEG: {r}"
    );
    assert_balance(&c, &srv, &key, before - 1, "CMYK JPEG");

    // A sane image still works and is charged once.
    let (before, _) = balance(&c, &srv, &key);
    let (status, body, result) = submit_named(&c, &srv, &key, png, "line.png");
    assert_eq!(status, 200, "{body}");
    let r = result.unwrap();
    assert_eq!(r["status"], "ok", "{r}");
    assert!(r["result"].as_str().unwrap().contains(LINE_WORDS), "{r}");
    assert_balance(&c, &srv, &key, before - 1, "valid image");

    srv.stop();
    check_secrets(&dir, &key);
}

/// Hostile documents: refused at upload (400, or 413 for too many pages) with the reason, fast,
/// never charged, the server up; a Flate bomb behind a sane header is accepted and fails in its
/// task with the reason, costing nothing.
#[test]
fn hostile_documents_are_refused_with_the_reason() {
    let (_dir, srv, key) = start(&["--workers", "1"]);
    let c = client();
    let (before, _) = balance(&c, &srv, &key);
    let two = fixture("two-pages.pdf");
    // Neither the cross-reference table nor a scan for "N 0 obj" finds an object.
    let mut broken = fixture("g4.pdf");
    for i in 0..broken.len() {
        if broken[i..].starts_with(b"obj") || broken[i..].starts_with(b"xref") {
            broken[i] = b'#';
        }
    }
    let mut deep = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /X ".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    let refused: [(&str, Vec<u8>, u16, &str); 9] = [
        (
            "encrypted PDF",
            fixture("encrypted.pdf"),
            400,
            "encrypted PDF",
        ),
        (
            "born-digital PDF",
            fixture("born-digital.pdf"),
            400,
            "has text or drawings",
        ),
        (
            "10^9 pages in a cycle",
            pdf_claiming_pages(),
            400,
            "loops back",
        ),
        ("100 000 nested arrays", deep, 400, "nested deeper"),
        (
            "100000x100000 image page",
            image_page_pdf(100_000, &[0; 8]),
            400,
            "too large",
        ),
        ("broken xref, no objects", broken, 400, "unreadable PDF"),
        (
            "PDF cut in half",
            two[..two.len() / 2].to_vec(),
            400,
            "unreadable PDF",
        ),
        (
            "PDF header only",
            b"%PDF-1.7\n".to_vec(),
            400,
            "unreadable PDF",
        ),
        (
            "TIFF of 10 000 pages",
            tiff_of(10_000),
            413,
            "at least 51 pages",
        ),
    ];
    for (what, bytes, expected, why) in refused {
        let t = Instant::now();
        let (status, body, _) = submit_named(&c, &srv, &key, bytes, "doc.pdf");
        eprintln!("{what}: {status} {body} in {:?}", t.elapsed());
        assert_fail(what, status, &body, expected);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{what}: {detail}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what}: {:?}",
            t.elapsed()
        );
    }
    // 100x100 grey claimed, 2 MiB of zeros inflated: found when the page is decoded.
    let bomb = image_page_pdf(100, &zlib_stored(&vec![0; 2 << 20]));
    expect_rejected(&c, &srv, &key, "Flate bomb", bomb, "bomb.pdf");
    assert_balance(&c, &srv, &key, before, "hostile documents");
    srv.stop();
}

/// A PDF of `objects` (numbered from 1, the first the catalog) with a correct xref table.
fn pdf_of(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).bytes());
        out.extend(body);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    let n = objects.len() + 1;
    out.extend(format!("xref\n0 {n}\n0000000000 65535 f \n").bytes());
    for o in offsets {
        out.extend(format!("{o:010} 00000 n \n").bytes());
    }
    out.extend(format!("trailer\n<< /Size {n} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").bytes());
    out
}

/// A page tree whose root claims 10^9 pages and lists itself as its kids.
fn pdf_claiming_pages() -> Vec<u8> {
    pdf_of(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count 1000000000 >>",
            "2 0 R ".repeat(1000)
        )
        .into_bytes(),
    ])
}

/// One page showing a `side`×`side` 8-bit grey image whose Flate data is `zlib`.
fn image_page_pdf(side: u32, zlib: &[u8]) -> Vec<u8> {
    let mut image = format!(
        "<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceGray \
         /BitsPerComponent 8 /Filter /FlateDecode /Length {} >>\nstream\n",
        zlib.len()
    )
    .into_bytes();
    image.extend(zlib);
    image.extend(b"\nendstream");
    let content = b"q 612 0 0 792 0 0 cm /Im0 Do Q";
    let mut contents = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    contents.extend(content);
    contents.extend(b"\nendstream");
    pdf_of(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
          /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>"
            .to_vec(),
        image,
        contents,
    ])
}

/// `data` as a zlib stream of stored (uncompressed) blocks: the test needs no compressor, and
/// the bomb's point is its inflated size against the image's, not its ratio.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend((b << 16 | a).to_be_bytes());
    out
}

/// A little-endian TIFF of `n` 1×1 grey pages, each IFD chained to the next.
fn tiff_of(n: usize) -> Vec<u8> {
    let mut out = b"II*\0\x08\0\0\0".to_vec();
    for i in 0..n {
        let data = out.len() + 2 + 8 * 12 + 4;
        // width, height, bits, no compression, black is zero, strip offset, rows, strip bytes
        let entries: [(u16, u16, u32); 8] = [
            (256, 3, 1),
            (257, 3, 1),
            (258, 3, 8),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, data as u32),
            (278, 3, 1),
            (279, 4, 1),
        ];
        out.extend(8u16.to_le_bytes());
        for (tag, kind, value) in entries {
            out.extend(tag.to_le_bytes());
            out.extend(kind.to_le_bytes());
            out.extend(1u32.to_le_bytes());
            out.extend(value.to_le_bytes());
        }
        let next = if i + 1 < n { data + 1 } else { 0 };
        out.extend((next as u32).to_le_bytes());
        out.push(200);
    }
    out
}

/// One upload of the hostile table: what it is, its bytes, the file name it is sent under.
struct Case {
    what: &'static str,
    bytes: Vec<u8>,
    name: &'static str,
}

impl Case {
    fn new(what: &'static str, bytes: Vec<u8>, name: &'static str) -> Case {
        Case { what, bytes, name }
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    // No RNG crate in dev-deps: a UUIDv4 per 16 bytes is random enough.
    for chunk in buf.chunks_mut(16) {
        let u = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&u.as_bytes()[..chunk.len()]);
    }
}

/// The database file and the server's log never contain the raw key.
fn check_secrets(dir: &TempDir, key: &str) {
    let db = std::fs::read(dir.db()).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "raw API key stored in the database file"
    );
    let log = std::fs::read_to_string(dir.db().with_extension("log")).unwrap();
    assert!(!log.is_empty(), "no log captured");
    assert!(!log.contains(key), "API key in the server log");
    assert!(
        !log.contains(&key[..16]),
        "API key prefix in the server log"
    );
}

#[test]
fn malformed_multipart_is_refused() {
    let (_dir, srv, key) = start(&["--workers", "1"]);
    let c = client();
    let url = srv.url(&format!("/api/ocr/solve?api={key}"));
    let (before, _) = balance(&c, &srv, &key);

    let form = Form::new().part("file", Part::bytes(line_png()).file_name("a.png"));
    let (s, b) = json(c.post(&url).multipart(form).send().unwrap());
    assert_fail("wrong field name", s, &b, 400);
    assert!(b["detail"].as_str().unwrap().contains("image"), "{b}");

    let form = Form::new().text("image", "not a file");
    let (s, b) = json(c.post(&url).multipart(form).send().unwrap());
    assert_fail("image as a text field", s, &b, 400);

    let (s, b) = json(
        c.post(&url)
            .header("content-type", "multipart/form-data")
            .body(line_png())
            .send()
            .unwrap(),
    );
    assert_fail("no boundary", s, &b, 400);

    let (s, b) = json(
        c.post(&url)
            .header("content-type", "image/png")
            .body(line_png())
            .send()
            .unwrap(),
    );
    assert_fail("raw image body", s, &b, 400);

    let (s, b) = json(c.post(&url).body(line_png()).send().unwrap());
    assert_fail("no content type", s, &b, 400);

    let (s, b) = json(
        c.post(&url)
            .header("content-type", "multipart/form-data; boundary=XYZ")
            .body("--XYZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\u{89}PNG")
            .send()
            .unwrap(),
    );
    assert_fail("unterminated multipart", s, &b, 400);

    let (s, b) = json(
        c.post(&url)
            .header("content-type", "multipart/form-data; boundary=XYZ")
            .body("--XYZ--\r\n")
            .send()
            .unwrap(),
    );
    assert_fail("empty multipart", s, &b, 400);
    assert_balance(&c, &srv, &key, before, "malformed multipart");

    // Two `image` fields are ambiguous: refused (after the whole body is read, so the
    // client sees the answer rather than a reset), and nothing charged.
    let form = Form::new()
        .part("image", Part::bytes(line_png()).file_name("a.png"))
        .part("image", Part::bytes(line_png()).file_name("b.png"));
    let (s, b) = json(c.post(&url).multipart(form).send().unwrap());
    assert_fail("two image fields", s, &b, 400);
    assert!(b["detail"].as_str().unwrap().contains("one image"), "{b}");

    // An extra text field before or after the image is read past and ignored.
    let form = Form::new()
        .text("note", "x".repeat(100_000))
        .part("image", Part::bytes(line_png()).file_name("a.png"))
        .text("after", "y");
    let (s, b) = json(c.post(&url).multipart(form).send().unwrap());
    assert_eq!(s, 200, "extra fields: {b}");
    let r = wait_result(&c, &srv, &key, b["task_id"].as_str().unwrap());
    assert_eq!(r["status"], "ok", "{r}");
    assert_balance(&c, &srv, &key, before - 1, "one image among other fields");
    balance(&c, &srv, &key);
}

#[test]
fn oversized_uploads_get_413() {
    let (_dir, srv, key) = start(&["--workers", "1", "--max-upload", "1MiB"]);
    let c = client();
    let (before, _) = balance(&c, &srv, &key);
    let big = vec![0x42u8; 3 << 20];

    // Declared Content-Length over the limit (reqwest).
    let form = Form::new().part("image", Part::bytes(big.clone()).file_name("big.png"));
    match c
        .post(srv.url(&format!("/api/ocr/solve?api={key}")))
        .multipart(form)
        .send()
    {
        Ok(resp) => {
            let (s, b) = json(resp);
            assert_fail("3 MiB with Content-Length", s, &b, 413);
        }
        Err(e) => panic!("3 MiB with Content-Length: no answer: {e}"),
    }

    // Chunked, no Content-Length (raw socket).
    let boundary = "hostileboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&big);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut chunked = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST /api/ocr/solve?api={key} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let resp = raw_request(&srv, &head, &chunked);
    let (s, b) = parse_raw(&resp);
    assert_fail("3 MiB chunked", s, &b, 413);

    // Just under the limit is still read (and fails as a non-image, 400).
    let form = Form::new().part(
        "image",
        Part::bytes(vec![0x42u8; 1000 * 1024]).file_name("ok.png"),
    );
    let (s, b) = json(
        c.post(srv.url(&format!("/api/ocr/solve?api={key}")))
            .multipart(form)
            .send()
            .unwrap(),
    );
    assert_fail("1000 KiB of garbage", s, &b, 400);

    // Huge declared length, nothing sent: answered at once, not after reading.
    let head = format!(
        "POST /api/ocr/solve?api={key} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 99999999999\r\n\r\n"
    );
    let t = Instant::now();
    let addr = srv.base.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    sock.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.read(&mut buf).unwrap_or(0);
    let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (s, b) = parse_raw(&resp);
    assert_fail("Content-Length 99999999999", s, &b, 413);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );

    assert_balance(&c, &srv, &key, before, "oversized uploads");
}

#[test]
fn bad_task_ids_and_keys() {
    let (_dir, srv, key) = start(&["--workers", "1"]);
    let c = client();
    let (before, _) = balance(&c, &srv, &key);

    let long = "a".repeat(5000);
    let ids = [
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        &uuid::Uuid::new_v4().to_string(),
        "..%2F..%2Fetc%2Fpasswd",
        "%00",
        &long,
    ];
    for id in ids {
        let (s, b) = get(&c, &srv.url(&format!("/api/ocr/result/{id}?api={key}")));
        assert_fail(&format!("task id {:.40}", id), s, &b, 404);
        assert_eq!(b["detail"], "Task not found or expired", "{b}");
    }
    // Raw traversal path (reqwest would normalise it).
    let resp = raw_request(
        &srv,
        &format!("GET /api/ocr/result/../../../etc/passwd?api={key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        b"",
    );
    let (s, b) = parse_raw(&resp);
    assert_eq!(s, 404, "{resp}");
    assert_eq!(b["status"], "fail", "{resp}");
    assert!(!resp.contains("root:"), "{resp}");

    let long_key = "k".repeat(5000);
    let bad_keys: [(&str, &str); 7] = [
        ("missing", ""),
        ("empty", "?api="),
        ("5000 chars", &format!("?api={long_key}")),
        ("non-ASCII", "?api=%C3%A9%E2%82%AC%F0%9F%94%91"),
        ("invalid UTF-8", "?api=%FF%FE%00"),
        ("key with a suffix", &format!("?api={key}x")),
        ("upper-cased key", &format!("?api={}", key.to_uppercase())),
    ];
    for (what, q) in bad_keys {
        if what == "upper-cased key" && key.to_uppercase() == key {
            continue;
        }
        let (s, b) = get(&c, &srv.url(&format!("/api/balance{q}")));
        assert_fail(&format!("balance, key {what}"), s, &b, 401);
        assert_eq!(b["detail"], "Invalid API key", "{b}");
        let form = Form::new().part("image", Part::bytes(line_png()).file_name("a.png"));
        let (s, b) = json(
            c.post(srv.url(&format!("/api/ocr/solve{q}")))
                .multipart(form)
                .send()
                .unwrap(),
        );
        assert_fail(&format!("solve, key {what}"), s, &b, 401);
        if !q.is_empty() {
            let (s, b) = get(
                &c,
                &srv.url(&format!("/api/ocr/result/{}{q}", uuid::Uuid::new_v4())),
            );
            assert!(s == 401 || s == 404, "result, key {what}: {s} {b}");
            assert_eq!(b["status"], "fail");
        }
    }
    assert_balance(&c, &srv, &key, before, "bad ids and keys");
}

#[test]
fn slow_header_client_is_cut_off_while_others_are_served() {
    let (_dir, srv, key) = start(&["--workers", "1"]);
    let addr = srv.base.trim_start_matches("http://").to_string();
    let request = format!(
        "GET /api/balance?api={key} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris-test\r\nAccept: */*\r\n\r\n"
    );
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1000)))
            .unwrap();
        let t = Instant::now();
        for &byte in request.as_bytes() {
            if s.write_all(&[byte]).is_err() {
                return (t.elapsed(), String::from("<write failed>"), true);
            }
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => return (t.elapsed(), String::new(), true),
                Ok(n) => {
                    return (
                        t.elapsed(),
                        String::from_utf8_lossy(&buf[..n]).into_owned(),
                        true,
                    )
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return (t.elapsed(), format!("<{e}>"), true),
            }
        }
        (t.elapsed(), String::new(), false)
    });
    // Meanwhile normal clients are served promptly.
    let c = client();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_secs(1));
        let t = Instant::now();
        balance(&c, &srv, &key);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "balance took {:?}",
            t.elapsed()
        );
    }
    let (elapsed, answer, cut) = slow.join().unwrap();
    eprintln!("slow client cut after {elapsed:?}: {answer:?}");
    assert!(
        cut,
        "slow client sent its whole request over {elapsed:?} without being cut off"
    );
    assert!(
        elapsed < Duration::from_secs(25),
        "cut off only after {elapsed:?}"
    );
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "slow client was served: {answer}"
    );
    balance(&c, &srv, &key);
}

#[test]
fn slow_upload_is_timed_out_with_request_timeout() {
    let (_dir, srv, key) = start(&["--workers", "1", "--request-timeout", "3s"]);
    let addr = srv.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let head = format!(
        "POST /api/ocr/solve?api={key} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n--x\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    while t.elapsed() < Duration::from_secs(15) {
        let _ = s.write_all(b"a");
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(1).any(|w| w == b"}") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let resp = String::from_utf8_lossy(&got).into_owned();
    eprintln!("slow upload after {:?}: {resp:?}", t.elapsed());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "slow upload never cut off"
    );
    let (status, body) = parse_raw(&resp);
    assert_fail("slow upload", status, &body, 408);
    let c = client();
    balance(&c, &srv, &key);
}
