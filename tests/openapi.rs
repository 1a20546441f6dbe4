//! The OpenAPI document at `GET /api/openapi.json` over real HTTP: it is JSON, OpenAPI 3.1, its
//! references resolve, and it lists exactly the routes the server answers — each path with the
//! methods the router takes (others get 405 with that `Allow`), each answer's status and content
//! type among those documented. A path literal in `src/http/routes.rs` that the document does
//! not name fails the test, so a new route cannot go undocumented. Schemathesis checks the rest
//! against a live server (`scripts/schemathesis.sh`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::*;

/// Every route of the router: the document's path, its one method, and a path to request.
const ROUTES: &[(&str, &str, &str)] = &[
    ("/", "GET", "/"),
    ("/index.html", "GET", "/index.html"),
    ("/api/balance", "GET", "/api/balance"),
    ("/api/ocr/solve", "POST", "/api/ocr/solve"),
    (
        "/api/ocr/result/{task_id}",
        "GET",
        "/api/ocr/result/d290f1ee-6c54-4b01-90e6-d701748f0851",
    ),
    ("/healthz", "GET", "/healthz"),
    ("/api/openapi.json", "GET", "/api/openapi.json"),
];

/// The router's source, whose path literals must all be documented.
const ROUTES_RS: &str = include_str!("../src/http/routes.rs");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The string literals starting with `/` in the non-test part of `routes.rs`.
fn path_literals() -> BTreeSet<String> {
    let code = ROUTES_RS
        .split("#[cfg(test)]")
        .next()
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with('/'))
        .map(str::to_string)
        .collect()
}

/// The value at `pointer` (`#/components/...`) in `doc`.
fn resolve<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    doc.pointer(pointer.strip_prefix('#')?)
}

/// Every `$ref` under `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The response object for `status` of an operation, references followed.
fn documented_response<'a>(doc: &'a Value, op: &'a Value, status: u16) -> Option<&'a Value> {
    let r = op["responses"].get(status.to_string())?;
    match r.get("$ref").and_then(Value::as_str) {
        Some(p) => resolve(doc, p),
        None => Some(r),
    }
}

#[test]
fn the_document_lists_every_route_the_server_answers() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let key = srv.first_key.clone().expect("first start prints a key");
    let c = client();

    // Served as JSON, cacheable, OpenAPI 3.1, this build's version.
    let resp = c.get(srv.url("/api/openapi.json")).send().unwrap();
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let (status, doc) = json(resp);
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20);
    for r in &all {
        assert!(resolve(&doc, r).is_some(), "unresolved $ref {r}");
    }

    // The document's paths and methods are exactly the router's.
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let routed: BTreeSet<&str> = ROUTES.iter().map(|r| r.0).collect();
    assert_eq!(documented, routed, "document paths vs ROUTES");
    for (path, method, _) in ROUTES {
        let ops: Vec<&str> = METHODS
            .into_iter()
            .filter(|m| paths[*path].get(*m).is_some())
            .collect();
        assert_eq!(ops, [method.to_lowercase()], "methods of {path}");
    }

    // A path named in routes.rs is a documented path (or the prefix of one, like the result's).
    for lit in path_literals() {
        assert!(
            ROUTES.iter().any(|(path, _, req)| *path == lit
                || *req == lit
                || (lit.ends_with('/') && path.starts_with(&lit))),
            "src/http/routes.rs answers {lit:?}, which the OpenAPI document does not describe \
             (add it to src/http/openapi.json and to ROUTES in tests/openapi.rs)"
        );
    }

    // Over HTTP: each route is answered (never the router's 404), with a documented status and
    // content type; any other method gets 405 with the documented method in `Allow`.
    for (path, method, req) in ROUTES {
        let op = &paths[*path][method.to_lowercase()];
        let resp = c
            .request(method.parse().unwrap(), srv.url(req))
            .header("x-api-key", &key)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        let body = resp.text().unwrap();
        let answer = documented_response(&doc, op, status)
            .unwrap_or_else(|| panic!("{method} {req}: status {status} not documented: {body}"));
        let media = ct.split(';').next().unwrap().trim();
        assert!(
            answer["content"].get(media).is_some(),
            "{method} {req}: {status} as {ct}, documented {}",
            answer["content"]
        );
        if status == 404 {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_ne!(v["detail"], "Not found", "{method} {req} is not routed");
        }

        let other = if *method == "GET" { "DELETE" } else { "GET" };
        let resp = c
            .request(other.parse().unwrap(), srv.url(req))
            .send()
            .unwrap();
        assert_eq!(resp.headers()["allow"], *method, "{other} {req}");
        let (status, body) = json(resp);
        assert_eq!(status, 405, "{other} {req}: {body}");
    }

    // Anything else is the router's 404, which the document's description announces.
    let (status, body) = get(&c, &srv.url("/api/openapi.yaml"));
    assert_eq!((status, body["detail"].as_str()), (404, Some("Not found")));
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains(r#"{"status":"fail","detail":"Not found"}"#));
    srv.stop();
}
