//! Health and metrics over real HTTP: `GET /healthz` on the API's port (no key; 503 once
//! shutdown began) and the opt-in metrics listener (`--metrics-listen`): off by default, its
//! counters move with real requests, and no key, key id or task id appears in it. The
//! exposition is also checked by a real parser in `scripts/metrics-test.sh`.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// The version `ocrbox --version` prints (`ocrbox 0.1.0 (target)` on its first line).
fn cli_version() -> String {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}

/// TCP sockets process `pid` listens on (its fds matched against the kernel's tables).
fn listening_sockets(pid: u32) -> usize {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) == Some(&"0A") && f.get(9).is_some_and(|i| inodes.contains(*i)) {
                n += 1;
            }
        }
    }
    n
}

/// One scrape: its text, and each sample's value by its series (`name{labels}`).
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in:\n{}", self.text))
    }
}

fn scrape(c: &reqwest::blocking::Client, metrics: &str) -> Scrape {
    let resp = c.get(format!("{metrics}/metrics")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().unwrap();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect();
    Scrape { text, samples }
}

#[test]
fn healthz_answers_without_a_key_and_metrics_are_off_by_default() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let c = client();
    let version = cli_version();
    let ok = json!({"status": "ok", "version": version});
    assert_eq!(get(&c, &srv.url("/healthz")), (200, ok.clone()));
    // Keys are not looked at: a wrong one changes nothing.
    assert_eq!(get(&c, &srv.url("/healthz?api=wrong")), (200, ok));
    let (status, _) = json(c.post(srv.url("/healthz")).send().unwrap());
    assert_eq!(status, 405);

    // No metrics listener unless asked for: no line about it, no second listening socket,
    // and the API's port does not serve /metrics.
    assert_eq!(srv.metrics, None);
    assert_eq!(listening_sockets(srv.pid()), 1);
    assert_eq!(get(&c, &srv.url("/metrics")).0, 404);
    srv.stop();
}

#[test]
fn metrics_count_requests_ocr_credits_and_refusals_and_hold_no_key() {
    let dir = TempDir::new();
    let srv = Server::start(
        &dir.db(),
        &["--workers", "1", "--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = srv.metrics.clone().expect("a `metrics on ADDR` line");
    assert_eq!(listening_sockets(srv.pid()), 2);
    let key = srv.first_key.clone().unwrap();
    let empty = add_key(&dir.db(), 0);
    let c = client();

    let before = scrape(&c, &metrics);
    assert_eq!(before.value("ocrbox_credits_charged_total"), 0.0);
    assert_eq!(
        before.value("ocrbox_ocr_seconds_count{kind=\"image\"}"),
        0.0
    );
    assert_eq!(
        before.value("ocrbox_refusals_total{status=\"402\",reason=\"no_solves\"}"),
        0.0
    );

    // One solve read to the end, one refused for want of credits, one unknown path.
    let (status, body) = submit(&c, &srv, &key, line_png());
    assert_eq!(status, 200, "{body}");
    let task = body["task_id"].as_str().unwrap().to_string();
    let done = wait_result(&c, &srv, &key, &task);
    assert!(
        done["result"].as_str().unwrap().contains(LINE_WORDS),
        "{done}"
    );
    assert_eq!(submit(&c, &srv, &empty, line_png()).0, 402);
    assert_eq!(get(&c, &srv.url("/no/such/path")).0, 404);

    let after = scrape(&c, &metrics);
    let v = |s: &str| after.value(s);
    let requests = |route: &str, status: u16| {
        v(&format!(
            "ocrbox_http_requests_total{{route=\"{route}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(requests("/api/ocr/solve", 200), 1.0);
    assert_eq!(requests("/api/ocr/solve", 402), 1.0);
    assert!(requests("/api/ocr/result/{task_id}", 200) >= 1.0);
    assert_eq!(requests("other", 404), 1.0);
    assert_eq!(
        v("ocrbox_refusals_total{status=\"402\",reason=\"no_solves\"}"),
        1.0
    );
    assert_eq!(
        v("ocrbox_refusals_total{status=\"503\",reason=\"queue_full\"}"),
        0.0
    );
    assert_eq!(v("ocrbox_ocr_seconds_count{kind=\"image\"}"), 1.0);
    assert_eq!(v("ocrbox_ocr_seconds_count{kind=\"document\"}"), 0.0);
    let seconds = v("ocrbox_ocr_seconds_sum{kind=\"image\"}");
    let time = done["time"].as_f64().unwrap();
    assert!(
        seconds > 0.0 && (seconds - time).abs() < 0.01,
        "{seconds} vs {time}"
    );
    assert_eq!(
        v("ocrbox_ocr_seconds_bucket{kind=\"image\",le=\"+Inf\"}"),
        1.0
    );
    assert_eq!(v("ocrbox_credits_charged_total"), 1.0);
    assert_eq!(v("ocrbox_tasks_in_flight"), 0.0);
    assert_eq!(v("ocrbox_queue_depth"), 0.0);
    assert_eq!(v("ocrbox_queue_capacity"), 64.0);
    assert_eq!(v("ocrbox_workers"), 1.0);
    assert!(v("ocrbox_plan_cache_bytes{model=\"det\"}") > 0.0);
    assert!(v("ocrbox_plan_cache_bytes{model=\"rec\"}") > 0.0);
    assert!(v("process_resident_memory_bytes") > (50 << 20) as f64);
    assert_eq!(
        v(&format!(
            "ocrbox_build_info{{version=\"{}\"}}",
            cli_version()
        )),
        1.0
    );

    // Neither key, nor a key id (its first 8 characters), nor the task id, in either format.
    let open = c
        .get(format!("{metrics}/metrics"))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .unwrap();
    assert_eq!(
        open.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let open = open.text().unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    for text in [&after.text, &open] {
        for secret in [&key[..], &key[..8], &empty[..], &empty[..8], &task[..]] {
            assert!(!text.contains(secret), "{secret} in the exposition");
        }
    }

    // The metrics listener's other answers.
    let ok = json!({"status": "ok", "version": cli_version()});
    assert_eq!(get(&c, &format!("{metrics}/healthz")), (200, ok));
    assert_eq!(get(&c, &format!("{metrics}/other")).0, 404);
    let (status, _) = json(c.post(format!("{metrics}/metrics")).send().unwrap());
    assert_eq!(status, 405);
    srv.stop();
}

/// The service makes the classifier's plan (and the recogniser's width-free graph) beside its
/// start, so the first image does not wait for them: with no request at all, the classifier's
/// plan shows in the plan cache, and the detector's (made per image shape) does not.
#[test]
fn the_service_warms_up_without_a_request() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = srv.metrics.clone().expect("a `metrics on ADDR` line");
    let c = client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let warm = loop {
        let now = scrape(&c, &metrics);
        if now.value("ocrbox_plan_cache_bytes{model=\"cls\"}") > 0.0 {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no classifier plan:\n{}",
            now.text
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(warm.value("ocrbox_plan_cache_bytes{model=\"det\"}"), 0.0);
    assert_eq!(warm.value("ocrbox_ocr_seconds_count{kind=\"image\"}"), 0.0);
}

#[test]
fn healthz_says_503_while_shutting_down() {
    let dir = TempDir::new();
    let srv = Server::start(
        &dir.db(),
        &["--workers", "1", "--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = srv.metrics.clone().unwrap();
    let c = client();
    assert_eq!(get(&c, &format!("{metrics}/healthz")).0, 200);

    // A request whose headers are half sent is in progress: shutdown closes the API's listener
    // and idle connections, but lets this one finish (within the 10 s grace).
    let addr = srv.base.strip_prefix("http://").unwrap().to_string();
    let mut open = TcpStream::connect(&addr).unwrap();
    open.write_all(b"GET /healthz HTTP/1.1\r\nHost: ocrbox\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let term = Command::new("kill")
        .args(["-TERM", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());

    // The metrics listener answers through the drain, and says so.
    let failing = json!({"status": "fail", "version": cli_version(), "detail": "shutting down"});
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get(&c, &format!("{metrics}/healthz"));
        if status == 503 {
            assert_eq!(body, failing);
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(Instant::now() < deadline, "never 503 after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The API's listener is closed to newcomers...
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...and the request in progress, completed now, is answered 503.
    open.write_all(b"\r\n").unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    open.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(head.contains("content-type: application/json"), "{answer}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body, failing);
    // Exits cleanly once that connection is closed.
    srv.stop();
}

/// A page sent to a box whose other worker is idle is read on that worker's core too, and reads
/// exactly as on one thread; a single worker (all the CPU the admin gave) borrows nothing.
#[test]
fn a_lone_page_borrows_the_idle_cores_and_reads_the_same() {
    let page = format!("{}/tests/fixtures/page_0.png", env!("CARGO_MANIFEST_DIR"));
    let alone = cli(&["ocr", "--threads", "1", &page]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for workers in [2, 1] {
        let (text, lent) = read_alone(workers, "page_0.png");
        assert_eq!(text, alone.trim_end(), "{workers} workers");
        if workers > 1 && cores > 1 {
            // 44 lines: crops, orientation checks and readings, some on the lent core.
            assert!(
                lent > 0.0,
                "no work on the idle worker's core ({cores} cores)"
            );
        } else {
            assert_eq!(
                lent, 0.0,
                "{workers} worker(s), {cores} core(s): nothing to lend"
            );
        }
    }
}

/// The text of `fixture` read by a fresh server with `workers` workers and no other traffic,
/// and its `ocrbox_lent_core_items_total` afterwards.
fn read_alone(workers: usize, fixture_name: &str) -> (String, f64) {
    let dir = TempDir::new();
    let n = workers.to_string();
    let srv = Server::start(
        &dir.db(),
        &["--workers", &n, "--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = srv.metrics.clone().unwrap();
    let key = srv.first_key.clone().unwrap();
    let c = client();
    let (status, body) = submit(&c, &srv, &key, fixture(fixture_name));
    assert_eq!(status, 200, "{body}");
    let done = wait_result(&c, &srv, &key, body["task_id"].as_str().unwrap());
    assert_eq!(done["status"], "ok", "{done}");
    let lent = scrape(&c, &metrics).value("ocrbox_lent_core_items_total");
    srv.stop();
    (done["result"].as_str().unwrap().to_string(), lent)
}
