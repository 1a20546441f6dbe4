//! Documents of several pages over real HTTP: a multi-page CCITT G4 TIFF, made by a real tool
//! (tests/fixtures/SOURCES.md). Pages come back in order, joined by a form feed; each page costs
//! one credit, counted before queueing; too few credits → 402 and nothing charged; more pages
//! than `--max-pages` → 413.

use ocrbox::accuracy::cer;

use crate::common::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

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
