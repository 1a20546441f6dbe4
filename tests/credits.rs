//! Credits over real HTTP: exact charging under concurrency, 402, failures free, persistence.

use std::sync::Arc;

use crate::common::*;

#[test]
fn credits_run_out_with_402() {
    let dir = TempDir::new();
    let key = add_key(&dir.db(), 1);
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let c = client();
    let (s, b) = submit(&c, &srv, &key, line_png());
    assert_eq!(s, 200, "{b}");
    let task = b["task_id"].as_str().unwrap().to_string();
    // The only credit is reserved by the task in flight.
    let (s, b) = submit(&c, &srv, &key, line_png());
    assert_eq!(
        (s, b["detail"].as_str()),
        (402, Some("No solves remaining"))
    );
    assert_eq!(b["status"], "fail");
    let done = wait_result(&c, &srv, &key, &task);
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(done["solves"], 0);
    let (s, b) = submit(&c, &srv, &key, line_png());
    assert_eq!(
        (s, b["detail"].as_str()),
        (402, Some("No solves remaining"))
    );
    assert_eq!(balance(&c, &srv, &key), (0, 1));
    srv.stop();
}

#[test]
fn failed_ocr_charges_nothing() {
    let dir = TempDir::new();
    let key = add_key(&dir.db(), 3);
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let c = client();
    // A PNG signature passes the upload check; the body does not decode.
    let mut broken = b"\x89PNG\r\n\x1a\n".to_vec();
    broken.extend_from_slice(&[0x42; 200]);
    let (s, b) = submit(&c, &srv, &key, broken);
    assert_eq!(s, 200, "{b}");
    let task = b["task_id"].as_str().unwrap().to_string();
    let done = wait_result(&c, &srv, &key, &task);
    assert_eq!(done["status"], "fail", "{done}");
    assert!(!done["result"].as_str().unwrap().is_empty());
    assert!(done["time"].is_f64());
    assert_eq!(done["solves"], 3);
    assert_eq!(balance(&c, &srv, &key), (3, 0));
    srv.stop();
}

#[test]
fn fifty_parallel_submits_on_ten_credits_charge_exactly_ten() {
    let dir = TempDir::new();
    let key = Arc::new(add_key(&dir.db(), 10));
    let srv = Arc::new(Server::start(
        &dir.db(),
        &["--workers", "2", "--queue", "64"],
    ));
    let png = Arc::new(line_png());
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (srv, key, png) = (Arc::clone(&srv), Arc::clone(&key), Arc::clone(&png));
            std::thread::spawn(move || {
                let c = client();
                let (s, b) = submit(&c, &srv, &key, png.to_vec());
                match s {
                    200 => Some(b["task_id"].as_str().unwrap().to_string()),
                    402 => None,
                    other => panic!("unexpected {other}: {b}"),
                }
            })
        })
        .collect();
    let accepted: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        accepted.len(),
        10,
        "exactly the credits available are accepted"
    );
    let c = client();
    for task in &accepted {
        let done = wait_result(&c, &srv, &key, task);
        assert_eq!(done["status"], "ok", "{done}");
        assert!(done["solves"].as_u64().unwrap() < 10);
    }
    assert_eq!(balance(&c, &srv, &key), (0, 10));
    let (s, _) = submit(&c, &srv, &key, png.to_vec());
    assert_eq!(s, 402);
    Arc::try_unwrap(srv).ok().unwrap().stop();
}

#[test]
fn restart_keeps_balances_and_24h() {
    let dir = TempDir::new();
    let key = add_key(&dir.db(), 7);
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let c = client();
    let (s, b) = submit(&c, &srv, &key, line_png());
    assert_eq!(s, 200, "{b}");
    let done = wait_result(&c, &srv, &key, b["task_id"].as_str().unwrap());
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(balance(&c, &srv, &key), (6, 1));
    srv.stop();

    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    assert!(
        srv.first_key.is_none(),
        "the first key is created only once"
    );
    assert_eq!(balance(&c, &srv, &key), (6, 1));
    srv.stop();
}
