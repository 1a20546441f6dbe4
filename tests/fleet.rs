//! A shared PostgreSQL ledger (`serve --ledger postgres://…`): boxes share keys, credits and
//! tasks. Each test starts a throwaway PostgreSQL server and real `ocrbox serve` processes on
//! it. Ignored by plain `cargo test` (they need PostgreSQL's server binaries); `.ci/run` runs
//! them with `--ignored`. The load-balanced fleet (HAProxy, kill -9, 300 submits) is
//! `scripts/fleet-test.sh`.

use std::time::{Duration, Instant};

use super::common::*;

/// `ocrbox keys --ledger URL add --solves N`: the new key.
fn add_key_pg(url: &str, solves: u64) -> String {
    cli(&[
        "keys",
        "--ledger",
        url,
        "add",
        "--solves",
        &solves.to_string(),
    ])
    .trim()
    .to_string()
}

fn box_on(dir: &TempDir, name: &str, url: &str, extra: &[&str]) -> Server {
    let args = [
        &["--ledger", url, "--workers", "1", "--task-ttl", "30s"],
        extra,
    ]
    .concat();
    Server::start(&dir.0.join(format!("{name}.redb")), &args)
}

#[test]
#[ignore = "needs PostgreSQL server binaries; run with --ignored (.ci/run does)"]
fn a_task_submitted_to_one_box_is_answered_by_another() {
    let pg = Postgres::start();
    let dir = TempDir::new();
    let (a, b) = (
        box_on(&dir, "a", &pg.url(), &[]),
        box_on(&dir, "b", &pg.url(), &[]),
    );
    // Two boxes started at once on an empty ledger: one first key between them.
    assert_eq!([&a, &b].iter().filter(|s| s.first_key.is_some()).count(), 1);
    assert_eq!(pg.sql("SELECT count(*) FROM keys"), "1");
    let key = add_key_pg(&pg.url(), 3);
    let c = client();
    let (status, body) = submit(&c, &a, &key, line_png());
    assert_eq!(status, 200, "{body}");
    let task = body["task_id"].as_str().unwrap().to_string();
    // Long-poll on the other box: it reads the task from the database until it ends.
    let (status, done) = get(
        &c,
        &b.url(&format!("/api/ocr/result/{task}?api={key}&wait=30")),
    );
    assert_eq!(status, 200);
    assert_eq!(done["status"], "ok", "{done}");
    assert!(
        done["result"].as_str().unwrap().contains(LINE_WORDS),
        "{done}"
    );
    let (_, details) = get(
        &c,
        &b.url(&format!("/api/ocr/result/{task}?api={key}&details=1")),
    );
    assert_eq!(details["pages"][0]["width"], 786, "{details}");
    assert_eq!(balance(&c, &b, &key), (2, 1));
    assert_eq!(balance(&c, &a, &key), (2, 1));
    // Another key cannot read it on either box, and an unknown id is 404 on both.
    let other = add_key_pg(&pg.url(), 1);
    for srv in [&a, &b] {
        let (status, _) = get(&c, &srv.url(&format!("/api/ocr/result/{task}?api={other}")));
        assert_eq!(status, 404);
    }
    // Credit and revoke through the database take effect on every box at once.
    cli(&["keys", "--ledger", &pg.url(), "credit", &key[..8], "+5"]);
    assert_eq!(balance(&c, &a, &key).0, 7);
    cli(&["keys", "--ledger", &pg.url(), "revoke", &key[..8]]);
    for srv in [&a, &b] {
        let (status, _) = get(&c, &srv.url(&format!("/api/balance?api={key}")));
        assert_eq!(status, 401);
    }
    assert_eq!(
        pg.sql("SELECT count(*) FROM tasks WHERE state = 'in_process'"),
        "0"
    );
}

#[test]
#[ignore = "needs PostgreSQL server binaries; run with --ignored (.ci/run does)"]
fn concurrent_submits_on_two_boxes_never_overspend() {
    let pg = Postgres::start();
    let dir = TempDir::new();
    let boxes = [
        box_on(&dir, "a", &pg.url(), &[]),
        box_on(&dir, "b", &pg.url(), &[]),
    ];
    let key = add_key_pg(&pg.url(), 12);
    let image = line_png();
    let outcomes: Vec<(u16, Option<String>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let (srv, key, image) = (&boxes[i % 2], &key, image.clone());
                s.spawn(move || {
                    let (status, body) = submit(&client(), srv, key, image);
                    (status, body["task_id"].as_str().map(str::to_string), i % 2)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let c = client();
    let mut ok = 0;
    for (status, task, i) in &outcomes {
        match (status, task) {
            (200, Some(task)) => {
                // Polled on the box that did not accept it.
                let result = wait_result(&c, &boxes[1 - i], &key, task);
                if result["status"] == "ok" {
                    ok += 1;
                }
            }
            (402 | 503, None) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 12, "{outcomes:?}");
    assert_eq!(balance(&c, &boxes[0], &key), (0, 12));
    assert_eq!(
        pg.sql("SELECT count(*) FROM tasks WHERE state = 'in_process'"),
        "0"
    );
}

#[test]
#[ignore = "needs PostgreSQL server binaries; run with --ignored (.ci/run does)"]
fn a_database_outage_is_503_with_retry_after_and_the_box_recovers() {
    let pg = Postgres::start();
    let dir = TempDir::new();
    let srv = box_on(&dir, "a", &pg.url(), &["--metrics-listen", "127.0.0.1:0"]);
    let key = add_key_pg(&pg.url(), 2);
    let c = client();
    pg.ctl(&["stop"]);
    let resp = c
        .get(srv.url(&format!("/api/balance?api={key}")))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let (status, _) = submit(&c, &srv, &key, line_png());
    assert_eq!(status, 503);
    let (status, health) = get(&c, &srv.url("/healthz"));
    assert_eq!(status, 503, "{health}");
    // Both refusals are counted for the operator's alert.
    let metrics = c
        .get(format!("{}/metrics", srv.metrics.as_ref().unwrap()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("ocrbox_refusals_total{status=\"503\",reason=\"ledger_unavailable\"} 2"),
        "{metrics}"
    );
    pg.ctl(&["start", "-w"]);
    // No restart of the box: its pool reconnects on the next call.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = get(&c, &srv.url("/healthz"));
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "box did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = submit(&c, &srv, &key, line_png());
    assert_eq!(status, 200, "{body}");
    let result = wait_result(&c, &srv, &key, body["task_id"].as_str().unwrap());
    assert_eq!(result["status"], "ok");
    assert_eq!(balance(&c, &srv, &key), (1, 1));
}

#[test]
#[ignore = "needs PostgreSQL server binaries; run with --ignored (.ci/run does)"]
fn ledger_copy_moves_keys_balances_and_usage_both_ways() {
    let pg = Postgres::start();
    let dir = TempDir::new();
    // A single box's history: two keys, one solve, one revoked key.
    let db = dir.db();
    let key = add_key(&db, 5);
    let gone = add_key(&db, 1);
    {
        let srv = Server::start(&db, &["--workers", "1"]);
        let c = client();
        let (_, body) = submit(&c, &srv, &key, line_png());
        let result = wait_result(&c, &srv, &key, body["task_id"].as_str().unwrap());
        assert_eq!(result["status"], "ok");
        keys(&db, &["revoke", &gone[..8]]);
        srv.stop();
    }
    let copied = std::process::Command::new(BIN)
        .args(["ledger", "copy", "--from"])
        .arg(&db)
        .args(["--to", &pg.url()])
        .output()
        .unwrap();
    assert!(copied.status.success());
    assert!(String::from_utf8_lossy(&copied.stderr).contains("copied 2 keys and 1 usage"));
    // The keys work on a box of the shared ledger with their balance and 24 h.
    let srv = box_on(&dir, "a", &pg.url(), &[]);
    let c = client();
    assert_eq!(balance(&c, &srv, &key), (4, 1));
    let (status, _) = get(&c, &srv.url(&format!("/api/balance?api={gone}")));
    assert_eq!(status, 401);
    // Into a ledger that has keys: refused, nothing mixed.
    let again = std::process::Command::new(BIN)
        .args(["ledger", "copy", "--from"])
        .arg(&db)
        .args(["--to", &pg.url()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has keys"));
    // And back, through a backup of the shared ledger taken while the box serves.
    let out = dir.0.join("fleet-backup.redb");
    cli(&["backup", "--ledger", &pg.url(), out.to_str().unwrap()]);
    let listed = keys(&out, &["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == key[..8])
        .unwrap();
    assert_eq!(
        (row["solves"].as_u64(), row["last_24h"].as_u64()),
        (Some(4), Some(1))
    );
}

#[test]
#[ignore = "needs PostgreSQL server binaries; run with --ignored (.ci/run does)"]
fn concurrent_first_starts_migrate_the_schema_once() {
    let pg = Postgres::start();
    let url = pg.url();
    // Four processes meet an empty database at once; the advisory lock lets one migrate.
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(BIN)
                .args(["keys", "--ledger", &url, "list"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(
        pg.sql("SELECT string_agg(version::text, ',') FROM ocrbox_schema"),
        "1"
    );
    assert_eq!(pg.sql("SELECT count(*) FROM keys"), "0");
}

#[test]
#[ignore = "needs PostgreSQL server binaries; run with --ignored (.ci/run does)"]
fn tls_to_the_database_is_verified_against_the_given_ca() {
    let pg = Postgres::start();
    let dir = TempDir::new();
    // A private CA and a server certificate for 127.0.0.1 signed by it (openssl comes with
    // Debian's postgresql, through ssl-cert).
    let sh = |script: &str| {
        let ok = std::process::Command::new("sh")
            .args(["-ec", script])
            .current_dir(&dir.0)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "{script}");
    };
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
        -keyout ca.key -out ca.pem",
    );
    sh("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr \
        && printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext \
        && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
           -extfile ext -out server.pem && chmod 600 server.key");
    pg.enable_tls(&dir.0.join("server.pem"), &dir.0.join("server.key"));
    let url = format!("{}?sslmode=require", pg.url());
    // Without the CA the server's certificate is refused...
    let refused = std::process::Command::new(BIN)
        .args(["keys", "--ledger", &url, "list"])
        .env_remove("OCRBOX_LEDGER_CA")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    // ...with it, the connection is encrypted (the server says so for our session).
    let added = std::process::Command::new(BIN)
        .args(["keys", "--ledger", &url, "add", "--solves", "1"])
        .env("OCRBOX_LEDGER_CA", dir.0.join("ca.pem"))
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let srv = Server::start_with_env(
        &dir.db(),
        &["--ledger", &url, "--workers", "1"],
        &[("OCRBOX_LEDGER_CA", dir.0.join("ca.pem").to_str().unwrap())],
    );
    let key = String::from_utf8(added.stdout).unwrap().trim().to_string();
    assert_eq!(balance(&client(), &srv, &key), (1, 0));
    assert_eq!(
        pg.sql("SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = 'ocrbox'"),
        "t"
    );
}
