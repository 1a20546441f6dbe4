//! Decoding hints on `POST /api/ocr/solve` over real HTTP, on real captchas and text lines:
//! the decoder obeys them (a letter captcha read as digits still gives six digits, which
//! deleting characters afterwards could not), bad hints are refused with the reason before
//! the upload is read, and nothing is charged for them.

use crate::common::*;

/// The text read with `hints`.
fn read(c: &reqwest::blocking::Client, srv: &Server, key: &str, hints: &str, name: &str) -> String {
    let (status, body) = submit_with(c, srv, key, hints, fixture(name));
    assert_eq!(status, 200, "{hints}: {body}");
    let done = wait_result(c, srv, key, body["task_id"].as_str().unwrap());
    assert_eq!(done["status"], "ok", "{hints}: {done}");
    done["result"].as_str().unwrap().to_string()
}

#[test]
fn the_decoder_obeys_the_hints() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let key = srv.first_key.clone().unwrap();
    let c = client();

    // Without hints: the captcha's letters.
    assert_eq!(read(&c, &srv, &key, "", "AABTRE.jpg"), "AABTRE");
    // Letters read as lower case: the model's capitals count for their small letters.
    assert_eq!(read(&c, &srv, &key, "case=lower", "AABTRE.jpg"), "aabtre");
    // Digits only, six of them, from an image of letters (read as one line: found lines this
    // unsure are dropped): the best six-digit path through what the model saw. Deleting the
    // letters after decoding would leave nothing.
    let digits = read(
        &c,
        &srv,
        &key,
        "numeric=1&min_len=6&max_len=6&single_line=1",
        "AABTRE.jpg",
    );
    assert!(
        digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()),
        "{digits:?}"
    );
    // The Amazon captchas' true hints: a character set and a case on an image they fit change
    // nothing; on six squeezed letters (read `AJULKR` without a length) the strip is widened
    // so each letter gets its share of the recogniser's steps.
    let amazon = "charset=ABCDEFGHIJKLMNOPQRSTUVWXYZ&case=upper&min_len=6&max_len=6";
    for name in ["AACXRC.jpg", "AJJLKR.jpg"] {
        assert_eq!(
            read(&c, &srv, &key, amazon, name),
            name.trim_end_matches(".jpg")
        );
    }
    // A digit captcha read as one line, digits only.
    assert_eq!(
        read(
            &c,
            &srv,
            &key,
            "single_line=1&numeric=true",
            "digits_003080.png"
        ),
        "003080"
    );
    // A text line cut to at most 5 characters, no spaces restored into it.
    let short = read(&c, &srv, &key, "max_len=5", "line_001.png");
    assert!((1..=5).contains(&short.chars().count()), "{short:?}");
    // A charset without space: no word spaces either.
    let squeezed = read(
        &c,
        &srv,
        &key,
        "charset=abcdefghijklmnopqrstuvwxyz",
        "line_001.png",
    );
    assert!(
        !squeezed.is_empty() && squeezed.chars().all(|c| c.is_ascii_lowercase()),
        "{squeezed:?}"
    );
    assert!(squeezed.contains("memoryleak"), "{squeezed:?}");
    // Each reading cost one credit.
    assert_eq!(balance(&c, &srv, &key), (100 - 8, 8));
    srv.stop();
}

#[test]
fn bad_hints_are_refused_before_the_upload_and_cost_nothing() {
    let dir = TempDir::new();
    let srv = Server::start(&dir.db(), &["--workers", "1"]);
    let key = srv.first_key.clone().unwrap();
    let c = client();
    let cases = [
        ("numric=1", "unknown parameter \"numric\""),
        ("min_len=7&max_len=6", "min_len 7 is greater than max_len 6"),
        ("charset=", "charset is empty"),
        // U+201E „ is not in PP-OCRv6's dictionary.
        (
            "charset=%E2%80%9EAB",
            "charset has characters the model cannot read: „",
        ),
        ("case=title", "case=\"title\": expected upper or lower"),
        ("max_len=-1", "max_len=\"-1\""),
        ("numeric=yes", "numeric=\"yes\""),
        ("numeric=1&charset=ABC", "no character satisfies"),
        ("case=upper&case=lower", "case given more than once"),
    ];
    for (hints, want) in cases {
        let (status, body) = submit_with(&c, &srv, &key, hints, fixture("digits_000040.png"));
        assert_eq!(status, 400, "{hints}: {body}");
        assert_eq!(body["status"], "fail");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(want), "{hints}: {detail}");
    }
    // Checked before the upload is read: a body that is not even multipart gets the hint's
    // error, not the upload's.
    let (status, body) = json(
        c.post(srv.url(&format!("/api/ocr/solve?api={key}&numric=1")))
            .header("content-type", "text/plain")
            .body("not an upload")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("numric"),
        "{body}"
    );
    assert_eq!(balance(&c, &srv, &key), (100, 0));
    srv.stop();
}
