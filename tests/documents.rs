//! Documents of several pages over real HTTP: scanned PDFs (JPEG and CCITT G4 pages) and a
//! multi-page G4 TIFF, made by real tools (tests/fixtures/SOURCES.md). Pages come back in order,
//! joined by a form feed; each page costs one credit, counted before queueing; too few credits
//! → 402 and nothing charged; more pages than `--max-pages` → 413; born-digital, encrypted and
//! hostile PDFs → 400 with the reason.

use ocrbox::accuracy::cer;

use crate::common::*;

/// The expected text of a fixture page, from labels.tsv.
fn label(name: &str) -> String {
    let tsv = String::from_utf8(fixture("labels.tsv")).unwrap();
    tsv.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}\t")))
        .unwrap_or_else(|| panic!("{name} not in labels.tsv"))
        .replace("\\n", "\n")
}

/// Submits `doc` and waits (long-poll) for its result.
fn read(c: &reqwest::blocking::Client, srv: &Server, key: &str, doc: Vec<u8>) -> serde_json::Value {
    let (status, sub) = submit(c, srv, key, doc);
    assert_eq!(status, 200, "{sub}");
    wait_result(c, srv, key, sub["task_id"].as_str().unwrap())
}

#[test]
fn a_multi_page_g4_tiff_is_read_page_by_page_and_charged_per_page() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1", "--task-ttl", "5m"]);
    let key = add_key(&dir.db(), 5);
    let c = client();

    // Three 1-bit G4 pages (the second upside down): read in order, split by a form feed.
    let done = read(&c, &srv, &key, fixture("three-pages-g4.tif"));
    assert_eq!(done["status"], "ok", "{done}");
    let pages: Vec<&str> = done["result"].as_str().unwrap().split('\u{c}').collect();
    assert_eq!(pages.len(), 3, "{done}");
    for (got, name) in pages.iter().zip(["page_0.png", "page_1.png"]) {
        let e = cer(&label(name), got);
        assert!(e < 0.05, "{name}: CER {e} for {got:?}");
    }
    assert!(pages[2].split_whitespace().count() >= 10, "{:?}", pages[2]);
    assert_eq!(balance(&c, &srv, &key), (2, 3));

    // Two credits left: a 3-page document is refused before queueing and nothing is charged;
    // the credits are still there for a 1-page upload.
    let (status, body) = submit(&c, &srv, &key, fixture("three-pages-g4.tif"));
    assert_eq!(
        (status, body["detail"].as_str()),
        (402, Some("No solves remaining"))
    );
    assert_eq!(balance(&c, &srv, &key), (2, 3));
    let done = read(&c, &srv, &key, line_png());
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(balance(&c, &srv, &key), (1, 4));
    srv.stop();
}

#[test]
fn more_pages_than_max_pages_is_413_and_costs_nothing() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1", "--max-pages", "2"]);
    let key = add_key(&dir.db(), 10);
    let c = client();
    let (status, body) = submit(&c, &srv, &key, fixture("three-pages-g4.tif"));
    assert_eq!(status, 413, "{body}");
    let why = body["detail"].as_str().unwrap();
    assert!(why.contains('3') && why.contains('2'), "{why}");
    assert_eq!(balance(&c, &srv, &key), (10, 0));
    srv.stop();
}

#[test]
fn scanned_pdfs_are_read_and_other_pdfs_refused_with_the_reason() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1", "--task-ttl", "5m"]);
    let key = add_key(&dir.db(), 3);
    let c = client();

    // Two JPEG pages (the second upside down), then one CCITT G4 page: 3 credits.
    let done = read(&c, &srv, &key, fixture("two-pages.pdf"));
    assert_eq!(done["status"], "ok", "{done}");
    let pages: Vec<&str> = done["result"].as_str().unwrap().split('\u{c}').collect();
    assert_eq!(pages.len(), 2, "{done}");
    for (got, name) in pages.iter().zip(["page_0.png", "page_1.png"]) {
        let e = cer(&label(name), got);
        assert!(e < 0.05, "{name}: CER {e} for {got:?}");
    }
    let g4 = read(&c, &srv, &key, fixture("g4.pdf"));
    assert_eq!(g4["status"], "ok", "{g4}");
    let e = cer(&label("page_0.png"), g4["result"].as_str().unwrap());
    assert!(e < 0.05, "G4 page: CER {e}");
    assert_eq!(balance(&c, &srv, &key), (0, 3));

    // Refused before queueing, with the reason, and nothing charged (the key has 0 left, so
    // these are checked before credits would matter: a refused document never reaches 402).
    let key = add_key(&dir.db(), 1);
    let mut hostile = vec![
        (
            "born-digital.pdf",
            fixture("born-digital.pdf"),
            "not a scanned image",
        ),
        ("encrypted.pdf", fixture("encrypted.pdf"), "encrypted PDF"),
        (
            "truncated",
            fixture("two-pages.pdf")[..5000].to_vec(),
            "unreadable PDF",
        ),
    ];
    let mut deep = b"%PDF-1.4\n1 0 obj\n".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    hostile.push(("100 000 nested arrays", deep, "nested deeper"));
    hostile.push(("100 000 x 100 000 image", huge_image_pdf(), "too large"));
    for (what, doc, why) in hostile {
        let (status, body) = submit(&c, &srv, &key, doc);
        assert_eq!(status, 400, "{what}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{what}: {detail}");
    }
    assert_eq!(balance(&c, &srv, &key), (1, 0));
    srv.stop();
}

/// A well-formed one-page PDF whose image claims 100 000 × 100 000 pixels (a few bytes of data):
/// the size must be refused from the dictionary, before any pixel is decoded.
fn huge_image_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1000000000 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>".to_string(),
        "<< /Type /XObject /Subtype /Image /Width 100000 /Height 100000 /ColorSpace /DeviceGray /BitsPerComponent 8 /Length 4 >>\nstream\nabcd\nendstream".to_string(),
        "<< /Length 28 >>\nstream\nq 612 0 0 792 0 0 cm /Im0 Do Q\nendstream".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for o in offsets {
        out.extend(format!("{o:010} 00000 n \n").bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    out
}
