//! The API of API-SPEC.txt over real HTTP: the quick-start flow, every error path, expiry.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn quick_start_flow_reads_the_text() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let key = srv.first_key.clone().expect("first start prints a key");
    let c = client();

    // Step 1: balance.
    assert_eq!(balance(&c, &srv, &key), (100, 0));

    // Step 2: submit.
    let (status, body) = submit(&c, &srv, &key, line_png());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["result"], "in_process");
    assert_eq!(body["solves"], 100);
    let task = body["task_id"].as_str().unwrap().to_string();
    let id = uuid::Uuid::parse_str(&task).unwrap();
    assert_eq!(id.get_version_num(), 4);

    // Step 3: poll.
    let done = wait_result(&c, &srv, &key, &task);
    assert_eq!(done["status"], "ok", "{done}");
    let text = done["result"].as_str().unwrap();
    assert!(text.contains(LINE_WORDS), "unexpected text {text:?}");
    assert_eq!(done["task_id"], task.as_str());
    assert!(done["time"].as_f64().unwrap() > 0.0);
    assert_eq!(done["solves"], 99);

    // One credit gone, one solve counted.
    assert_eq!(balance(&c, &srv, &key), (99, 1));

    // Without a key the task id alone reads the result; another valid key does not.
    let (status, anon) = get(&c, &srv.url(&format!("/api/ocr/result/{task}")));
    assert_eq!(status, 200);
    assert_eq!(anon["result"], done["result"]);
    let other = add_key(&dir.db(), 1);
    let (status, body) = get(&c, &srv.url(&format!("/api/ocr/result/{task}?api={other}")));
    assert_eq!(
        (status, body["detail"].as_str()),
        (404, Some("Task not found or expired"))
    );
    let (status, body) = get(&c, &srv.url(&format!("/api/ocr/result/{task}?api=nope")));
    assert_eq!(
        (status, body["detail"].as_str()),
        (401, Some("Invalid API key"))
    );
    srv.stop();
}

fn detail(v: &serde_json::Value) -> &str {
    assert_eq!(v["status"], "fail", "{v}");
    v["detail"].as_str().unwrap()
}

/// A multipart body streamed without Content-Length (chunked transfer encoding).
struct Chunked(std::io::Cursor<Vec<u8>>);

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(4096);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn error_paths() {
    let dir = TempDir::new();
    let key = add_key(&dir.db(), 5);
    let revoked = add_key(&dir.db(), 5);
    keys(&dir.db(), &["revoke", &revoked[..8]]);
    let srv = Server::start(&dir.db(), &["--workers", "1", "--max-upload", "64KiB"]);
    assert!(srv.first_key.is_none(), "no first key when keys exist");
    let c = client();

    // 401: missing, unknown, revoked — on every endpoint that needs a key.
    for k in [
        "",
        "?api=",
        "?api=0123456789abcdef",
        &format!("?api={revoked}"),
    ] {
        let (s, b) = get(&c, &srv.url(&format!("/api/balance{k}")));
        assert_eq!((s, detail(&b)), (401, "Invalid API key"), "balance{k}");
        let form = reqwest::blocking::multipart::Form::new().part(
            "image",
            reqwest::blocking::multipart::Part::bytes(line_png()),
        );
        let (s, b) = json(
            c.post(srv.url(&format!("/api/ocr/solve{k}")))
                .multipart(form)
                .send()
                .unwrap(),
        );
        assert_eq!((s, detail(&b)), (401, "Invalid API key"), "solve{k}");
    }

    let solve = srv.url(&format!("/api/ocr/solve?api={key}"));
    // 400: not multipart.
    let (s, b) = json(c.post(&solve).body("hello").send().unwrap());
    assert_eq!(s, 400);
    assert!(detail(&b).contains("multipart/form-data"), "{b}");
    // 400: no `image` field.
    let form = reqwest::blocking::multipart::Form::new().text("file", "x");
    let (s, b) = json(c.post(&solve).multipart(form).send().unwrap());
    assert_eq!(s, 400);
    assert!(detail(&b).contains("image"), "{b}");
    // 400: not an image, whatever the file name says.
    let (s, b) = submit(&c, &srv, &key, b"plain text, definitely not a png".to_vec());
    assert_eq!(s, 400);
    assert!(detail(&b).contains("not an image"), "{b}");
    // 400: says it is a PDF, and is not one.
    let (s, b) = submit(&c, &srv, &key, b"%PDF-1.7 definitely not a pdf".to_vec());
    assert_eq!(s, 400);
    assert!(detail(&b).contains("unreadable PDF"), "{b}");
    // 400: empty image.
    let (s, b) = submit(&c, &srv, &key, Vec::new());
    assert_eq!(s, 400, "{b}");

    // 413: too large, with a declared length...
    let mut big = line_png();
    big.resize(200 * 1024, 0);
    let (s, b) = submit(&c, &srv, &key, big.clone());
    assert_eq!(s, 413);
    assert!(detail(&b).contains("too large"), "{b}");
    // ...and streamed without one.
    let boundary = "XyZzY";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&big);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = c
        .post(&solve)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::blocking::Body::new(Chunked(std::io::Cursor::new(
            body,
        ))))
        .send()
        .unwrap();
    let (s, b) = json(resp);
    assert_eq!(s, 413, "{b}");

    // 405 with Allow.
    let resp = c.get(&solve).send().unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    let (s, b) = json(resp);
    assert_eq!((s, detail(&b)), (405, "Method not allowed"));
    let (s, _) = json(c.delete(srv.url("/api/balance")).send().unwrap());
    assert_eq!(s, 405);

    // 404: unknown path, malformed and unknown task ids.
    let (s, b) = get(&c, &srv.url("/api/nothing"));
    assert_eq!((s, detail(&b)), (404, "Not found"));
    for id in ["not-a-uuid", &uuid::Uuid::new_v4().to_string()] {
        let (s, b) = get(&c, &srv.url(&format!("/api/ocr/result/{id}?api={key}")));
        assert_eq!((s, detail(&b)), (404, "Task not found or expired"));
    }

    // None of this cost anything.
    assert_eq!(balance(&c, &srv, &key), (5, 0));
    srv.stop();
}

#[test]
fn full_queue_answers_503_and_charges_nothing_extra() {
    let dir = TempDir::new();
    let key = add_key(&dir.db(), 20);
    let srv = Server::start(&dir.db(), &["--workers", "1", "--queue", "1"]);
    let c = client();
    let png = line_png();
    let mut accepted = Vec::new();
    let mut busy = 0;
    for _ in 0..8 {
        let part = reqwest::blocking::multipart::Part::bytes(png.clone());
        let form = reqwest::blocking::multipart::Form::new().part("image", part);
        let resp = c
            .post(srv.url(&format!("/api/ocr/solve?api={key}")))
            .multipart(form)
            .send()
            .unwrap();
        if resp.status() == 503 {
            assert!(resp.headers().contains_key("retry-after"));
            let (_, b) = json(resp);
            assert_eq!(b["status"], "fail");
            busy += 1;
        } else {
            let (s, b) = json(resp);
            assert_eq!(s, 200, "{b}");
            accepted.push(b["task_id"].as_str().unwrap().to_string());
        }
    }
    assert!(
        busy > 0,
        "one worker and one queue slot cannot take 8 uploads at once"
    );
    let mut ok = 0;
    for task in &accepted {
        if wait_result(&c, &srv, &key, task)["status"] == "ok" {
            ok += 1;
        }
    }
    assert_eq!(balance(&c, &srv, &key), (20 - ok, ok));
    srv.stop();
}

#[test]
fn tasks_expire_after_the_ttl() {
    let dir = TempDir::new();
    let key = add_key(&dir.db(), 5);
    // 4 s: a cold first reading took over 2 s on this 2-core machine under load.
    let srv = Server::start(&dir.db(), &["--workers", "1", "--task-ttl", "4s"]);
    let c = client();
    let submitted = Instant::now();
    let (s, b) = submit(&c, &srv, &key, line_png());
    assert_eq!(s, 200, "{b}");
    let task = b["task_id"].as_str().unwrap().to_string();
    let done = wait_result(&c, &srv, &key, &task);
    let seen = Instant::now();
    assert_eq!(done["status"], "ok", "{done}");
    // Past the TTL, and past the floor a result ready near expiry is kept (TTL/4 = 1 s): a
    // cold first reading on a busy machine can finish close to the 4 s.
    let gone = (submitted + Duration::from_millis(4100)).max(seen + Duration::from_millis(1100));
    std::thread::sleep(gone.saturating_duration_since(Instant::now()));
    let (s, b) = get(&c, &srv.url(&format!("/api/ocr/result/{task}?api={key}")));
    assert_eq!((s, detail(&b)), (404, "Task not found or expired"));
    // Expiry forgets the task, not the charge.
    assert_eq!(balance(&c, &srv, &key), (4, 1));
    srv.stop();
}
