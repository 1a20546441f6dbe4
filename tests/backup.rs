//! `ocrbox backup` while the server reads images: each copy opens cleanly and is the ledger
//! at one instant (a charge and its usage record are in it together or not at all).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// Runs `ocrbox backup --db DB OUT`, panicking on failure.
fn backup(db: &std::path::Path, out: &std::path::Path) {
    let run = Command::new(BIN)
        .args(["backup", "--db"])
        .arg(db)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// (solves, 24h) per key id in a (not served) database, read with `ocrbox keys list`.
fn totals(db: &std::path::Path) -> Vec<(String, u64, u64)> {
    let list: serde_json::Value = serde_json::from_str(&keys(db, &["list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_string(),
                k["solves"].as_u64().unwrap(),
                k["last_24h"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn backups_under_load_are_consistent_copies() {
    let dir = TempDir::new();
    // Results live 30 s from submission by default; on a busy machine the queue (64) can take
    // longer than that to drain, and the first tasks' results would be gone before they are
    // checked. What is tested here is the ledger, not expiry.
    let srv = Server::start(&dir.db(), &["--workers", "2", "--task-ttl", "10m"]);
    let first = srv.first_key.clone().unwrap();
    let second = add_key(&dir.db(), 40);
    let stop = Arc::new(AtomicBool::new(false));
    // Two clients solving lines until told to stop (the second key runs dry: 402s too).
    let clients: Vec<_> = [first.clone(), second.clone()]
        .into_iter()
        .map(|key| {
            let stop = Arc::clone(&stop);
            let base = srv.base.clone();
            std::thread::spawn(move || {
                let c = client();
                let mut accepted = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let part =
                        reqwest::blocking::multipart::Part::bytes(line_png()).file_name("line.png");
                    let form = reqwest::blocking::multipart::Form::new().part("image", part);
                    let resp = c
                        .post(format!("{base}/api/ocr/solve?api={key}"))
                        .multipart(form)
                        .send()
                        .unwrap();
                    if resp.status() == 200 {
                        let body: serde_json::Value = resp.json().unwrap();
                        accepted.push((key.clone(), body["task_id"].as_str().unwrap().to_string()));
                    } else {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                accepted
            })
        })
        .collect();
    let initial = |id: &str| if first.starts_with(id) { 100 } else { 40 };
    for n in 0..4 {
        std::thread::sleep(Duration::from_millis(1500));
        let out = dir.0.join(format!("backup-{n}.redb"));
        backup(&dir.db(), &out);
        let rows = totals(&out);
        assert_eq!(rows.len(), 2, "{rows:?}");
        for (id, solves, day) in rows {
            // Every charge took one credit and added one solve to 24h, in one transaction.
            assert_eq!(solves + day, initial(&id), "backup {n}, key {id}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    let accepted: Vec<(String, String)> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(!accepted.is_empty());
    // Once every accepted task has ended, a last backup equals the live ledger.
    let c = client();
    for (key, task) in &accepted {
        wait_result(&c, &srv, key, task);
    }
    let live = [balance(&c, &srv, &first), balance(&c, &srv, &second)];
    let out = dir.0.join("final.redb");
    backup(&dir.db(), &out);
    let mut rows = totals(&out);
    rows.sort_by_key(|(id, ..)| !first.starts_with(id.as_str()));
    assert_eq!(
        [(rows[0].1, rows[0].2), (rows[1].1, rows[1].2)],
        live,
        "{rows:?}"
    );
    // Nothing staged is left beside the database or the copy.
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".backup-") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    srv.stop();
}
