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
