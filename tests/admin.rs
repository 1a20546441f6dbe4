//! `ocrbox keys` against a running server (through its admin socket) and without one.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;

#[test]
fn keys_admin_while_serving() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let first = srv.first_key.clone().unwrap();
    let c = client();

    // The admin socket sits next to the database, owner-only.
    let sock = dir.0.join("ocrbox.redb.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // add: the key alone on stdout, usable at once.
    let key = add_key(&dir.db(), 3);
    assert_eq!(key.len(), 40);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(balance(&c, &srv, &key), (3, 0));

    // list: ids, never whole keys.
    let list = keys(&dir.db(), &["list"]);
    assert!(
        list.contains(&key[..8]) && list.contains(&first[..8]),
        "{list}"
    );
    assert!(
        !list.contains(&key) && !list.contains(&first),
        "list leaks a key:\n{list}"
    );

    // credit by id prefix and by whole key.
    keys(&dir.db(), &["credit", &key[..8], "+5"]);
    assert_eq!(balance(&c, &srv, &key).0, 8);
    keys(&dir.db(), &["credit", &key[..6], "-3"]);
    assert_eq!(balance(&c, &srv, &key).0, 5);
    keys(&dir.db(), &["credit", &key, "=2"]);
    assert_eq!(balance(&c, &srv, &key).0, 2);
    let out = keys_raw(&dir.db(), &["credit", &key[..8], "-9"]);
    assert!(!out.status.success(), "cannot go below zero");
    assert_eq!(balance(&c, &srv, &key).0, 2);
    let out = keys_raw(&dir.db(), &["credit", "zzzzzzzz", "+1"]);
    assert!(!out.status.success());

    // revoke: 401 from then on.
    keys(&dir.db(), &["revoke", &key[..8]]);
    let (s, b) = get(&c, &srv.url(&format!("/api/balance?api={key}")));
    assert_eq!((s, b["detail"].as_str()), (401, Some("Invalid API key")));
    srv.stop();

    // Without a server the same commands open the file directly.
    assert!(!sock.exists(), "socket removed at shutdown");
    let json: serde_json::Value =
        serde_json::from_str(&keys(&dir.db(), &["list", "--json"])).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let row = rows.iter().find(|r| r["id"] == key[..8]).unwrap();
    assert_eq!(row["revoked"], true);
    assert_eq!(row["solves"], 2);
    keys(&dir.db(), &["credit", &first[..8], "=42"]);
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    assert_eq!(balance(&c, &srv, &first), (42, 0));
    srv.stop();
}

#[test]
fn admin_is_not_reachable_over_the_network() {
    use std::io::{Read, Write};

    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let key = srv.first_key.clone().unwrap();
    let c = client();
    let before = balance(&c, &srv, &key);

    // No HTTP route administers keys, with or without a valid key.
    for path in [
        "/admin",
        "/api/keys",
        "/api/admin/keys",
        "/api/keys/add",
        "/api/credit",
    ] {
        for url in [srv.url(path), srv.url(&format!("{path}?api={key}"))] {
            let resp = c
                .post(&url)
                .body(r#"{"op":"add","solves":1000}"#)
                .send()
                .unwrap();
            assert_eq!(resp.status(), 404, "POST {url}");
            let (s, _) = get(&c, &url);
            assert_eq!(s, 404, "GET {url}");
        }
    }

    // The admin socket's own protocol sent to the TCP port is just a bad HTTP request.
    let addr = srv.base.trim_start_matches("http://");
    for line in [
        "{\"op\":\"add\",\"name\":\"evil\",\"solves\":1000}\n",
        &format!(
            "{{\"op\":\"credit\",\"key\":\"{}\",\"change\":{{\"set\":1000}}}}\n",
            &key[..8]
        ),
        "{\"op\":\"list\"}\n",
    ] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        s.write_all(line.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.is_empty() || out.starts_with("HTTP/1.1 4"),
            "admin line over TCP answered: {out}"
        );
        assert!(!out.contains(&key[..8]), "key id leaked over TCP: {out}");
    }

    assert_eq!(balance(&c, &srv, &key), before);
    let list = keys(&dir.db(), &["list"]);
    assert!(
        !list.contains("evil"),
        "a key was added over the network:\n{list}"
    );
    srv.stop();
}
