//! The API's opt-in additions over real HTTP: the web page at `/`, the `X-API-Key` header,
//! `details=1` (page size and line boxes) and `wait=N` (long-poll). Without them every answer
//! is byte for byte the spec's (checked field by field here and by `api`).

use std::time::{Duration, Instant};

use crate::common::*;

const PAGE_PNG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/page_0.png");

#[test]
fn the_page_is_served_self_contained() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let c = client();
    let resp = c.get(srv.url("/")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let body = resp.text().unwrap();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/page.html");
    assert_eq!(body, std::fs::read_to_string(file).unwrap());
    // Nothing fetched from elsewhere (the CSP forbids it too; the browser tests watch requests).
    for external in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "src=\"//",
    ] {
        assert!(!body.contains(external), "page refers to {external}");
    }
    let (status, _) = json(c.post(srv.url("/")).send().unwrap());
    assert_eq!(status, 405);
    srv.stop();
}

#[test]
fn details_and_long_poll_and_the_key_header() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let key = srv.first_key.clone().unwrap();
    let c = client();

    // The key in a header instead of the URL; a wrong one is refused as in the query.
    let bal = |k: &str| {
        json(
            c.get(srv.url("/api/balance"))
                .header("X-API-Key", k)
                .send()
                .unwrap(),
        )
    };
    let (status, body) = bal(&key);
    assert_eq!((status, body["solves"].as_u64()), (200, Some(100)));
    assert_eq!(bal("wrong").0, 401);

    // Long-poll: one request, answered when the line is read (not after the full 25 s).
    let (_, sub) = submit(&c, &srv, &key, line_png());
    let task = sub["task_id"].as_str().unwrap().to_string();
    let t = Instant::now();
    let (status, done) = json(
        c.get(srv.url(&format!("/api/ocr/result/{task}?wait=25&details=1")))
            .header("X-API-Key", &key)
            .send()
            .unwrap(),
    );
    let waited = t.elapsed();
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "ok", "{done}");
    assert!(
        waited < Duration::from_secs(20),
        "long-poll took {waited:?}"
    );
    let text = done["result"].as_str().unwrap();
    assert!(text.contains(LINE_WORDS), "{text:?}");

    // details=1: the page as uploaded, its lines with confidence and box, inside the page.
    let (w, h) = image::image_dimensions(LINE_PNG).unwrap();
    let pages = done["pages"].as_array().expect("pages with details=1");
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0]["width"].as_u64(), Some(u64::from(w)));
    assert_eq!(pages[0]["height"].as_u64(), Some(u64::from(h)));
    let lines = pages[0]["lines"].as_array().unwrap();
    assert!(!lines.is_empty());
    let joined: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(joined.join(" "), text);
    for line in lines {
        let conf = line["confidence"].as_f64().unwrap();
        assert!(conf > 0.5 && conf <= 1.0, "{line}");
        let corners = line["box"].as_array().unwrap();
        assert_eq!(corners.len(), 4);
        for p in corners {
            let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
            assert!((0.0..=f64::from(w)).contains(&x) && (0.0..=f64::from(h)).contains(&y));
        }
    }

    // Without the options: exactly the spec's fields, in the spec's order.
    let raw = c
        .get(srv.url(&format!("/api/ocr/result/{task}?api={key}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let expected = format!(
        "{{\"status\":\"ok\",\"result\":{},\"task_id\":\"{task}\",\"time\":{},\"solves\":99}}",
        serde_json::to_string(text).unwrap(),
        done["time"]
    );
    assert_eq!(raw, expected);

    // A short wait on a slow task answers in_process after about that long.
    let (_, sub) = submit(&c, &srv, &key, std::fs::read(PAGE_PNG).unwrap());
    let task = sub["task_id"].as_str().unwrap().to_string();
    let t = Instant::now();
    let (status, body) = get(
        &c,
        &srv.url(&format!("/api/ocr/result/{task}?api={key}&wait=0.5")),
    );
    let waited = t.elapsed();
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("in_process")),
        "{body}"
    );
    assert!(
        waited >= Duration::from_millis(450),
        "answered after {waited:?}"
    );
    let (status, body) = get(
        &c,
        &srv.url(&format!("/api/ocr/result/{task}?api={key}&wait=soon")),
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(
        &c,
        &srv.url(&format!("/api/ocr/result/{task}?api={key}&details=maybe")),
    );
    assert_eq!(status, 400);
    let page = wait_result(&c, &srv, &key, &task);
    assert_eq!(page["status"], "ok");
    assert!(page.get("pages").is_none(), "{page}");
    srv.stop();
}
