"""The answers of GET /api/openapi.json that random inputs do not reach, checked against the
served document with Schemathesis' own response validation. Run by scripts/schemathesis.sh
before its fuzzing run, against the real binary started with --max-upload 1MiB --max-pages 2.

  1. The document is valid OpenAPI 3.1 (openapi-spec-validator) and every example in it
     (responses and parameters) validates against its own schema.
  2. Real requests, each answer's status and content type documented for its operation and
     its body valid (Schemathesis' validate_response): a page's task in process, done with
     details=1 (line boxes), a two-page TIFF done with details=1 (two pages, a form feed), a
     failed task, 401, 402, 404, 413 for bytes and for pages, 400 for a bad hint and a bad
     upload, balance, healthz, the web page and the document itself.

Environment: OCRBOX_URL (base URL), OCRBOX_KEY (funded key), OCRBOX_KEY_EMPTY (0 credits).
Exit status 0 when every check passed.
"""
import copy
import json
import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import jsonschema
import referencing
import requests
import schemathesis
from schemathesis.core.failures import Failure, FailureGroup
from openapi_spec_validator import validate as validate_spec

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
URL = os.environ["OCRBOX_URL"].rstrip("/")
KEY = os.environ["OCRBOX_KEY"]
KEY_EMPTY = os.environ["OCRBOX_KEY_EMPTY"]
DOC_URI = "urn:ocrbox:openapi"
RESULT = "/api/ocr/result/{task_id}"

failures = []
DOC = {}


def check(cond, what, quiet=False):
    if not (cond and quiet):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def pointer(*parts):
    """A JSON pointer as a URI fragment."""
    return "#" + "".join("/" + quote(str(p).replace("~", "~0").replace("/", "~1"), safe="") for p in parts)


def examples_of(doc):
    """(where, pointer to the schema, example value) for every example in the document."""

    def resolve(obj, at):
        while "$ref" in obj:
            at = [p.replace("~1", "/").replace("~0", "~") for p in obj["$ref"][2:].split("/")]
            obj = doc
            for part in at:
                obj = obj[part]
        return obj, at

    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, resp in op.get("responses", {}).items():
                resp, at = resolve(resp, ["paths", path, method, "responses", status])
                for media, content in resp.get("content", {}).items():
                    for name, ex in content.get("examples", {}).items():
                        yield (f"{method.upper()} {path} {status} {media} example {name}",
                               pointer(*at, "content", media, "schema"), ex["value"])
            for i, param in enumerate(op.get("parameters", [])):
                param, at = resolve(param, ["paths", path, method, "parameters", i])
                if "example" in param:
                    yield (f"{method.upper()} {path} parameter {param['name']} example",
                           pointer(*at, "schema"), param["example"])


def check_document(doc):
    try:
        validate_spec(copy.deepcopy(doc))
        check(True, "the document is valid OpenAPI 3.1 (openapi-spec-validator)")
    except Exception as e:  # noqa: BLE001 - report any validator error
        check(False, f"the document is valid OpenAPI 3.1: {e}")
    # The whole document as one resource, so local references (#/components/...) resolve.
    resource = referencing.Resource.from_contents(
        {**doc, "$id": DOC_URI}, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource(DOC_URI, resource)
    n = 0
    for where, at, value in examples_of(doc):
        n += 1
        validator = jsonschema.Draft202012Validator(
            {"$ref": DOC_URI + at},
            registry=registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        errors = [e.message for e in validator.iter_errors(value)]
        check(not errors, f"{where} validates{': ' + '; '.join(errors) if errors else ''}", quiet=True)
    check(n >= 20, f"{n} examples checked against their schemas")


def expect(schema, method, template, resp, status, what):
    """`resp` has `status`, and a content type and body the document gives for that status."""
    op = schema[template][method]
    problems = []
    if resp.status_code != status:
        problems.append(f"status {resp.status_code}, want {status}: {resp.text[:300]}")
    documented = op.definition.raw.get("responses", {}).get(str(resp.status_code))
    if documented is None:
        problems.append(f"status {resp.status_code} not documented for {method} {template}")
    else:
        while "$ref" in documented:
            target = DOC
            for part in documented["$ref"][2:].split("/"):
                target = target[part]
            documented = target
        media = resp.headers.get("content-type", "").split(";")[0].strip()
        if media not in documented.get("content", {}):
            problems.append(f"content type {media!r} not documented for {resp.status_code}")
    try:
        op.validate_response(resp)
    except Failure as e:  # the one way the answer does not conform to the document
        problems.append(f"{type(e).__name__}: {e}")
    except FailureGroup as group:  # each way it does not
        problems += [f"{type(e).__name__}: {e}" for e in group.exceptions]
    check(not problems, f"{what}: {resp.status_code} {resp.headers.get('content-type')}"
          + ("" if not problems else "\n       " + "\n       ".join(problems)))


def solve(params, files, key=KEY):
    return requests.post(f"{URL}/api/ocr/solve", params=params, files=files,
                         headers={"X-API-Key": key}, timeout=60)


def image(name):
    return {"image": (name, (FIXTURES / name).read_bytes())}


def wait_done(schema, task, what, details=True):
    """Polls with wait=25 (and details=1) until the task ends; checks each answer."""
    deadline = time.time() + 300
    while True:
        r = requests.get(f"{URL}/api/ocr/result/{task}",
                         params={"wait": 25, **({"details": 1} if details else {})}, timeout=60)
        body = r.json()
        if body.get("result") != "in_process" or time.time() > deadline:
            expect(schema, "GET", RESULT, r, 200, what)
            return body


def main():
    global DOC
    DOC = doc = requests.get(f"{URL}/api/openapi.json", timeout=30).json()
    check_document(doc)
    schema = schemathesis.openapi.from_url(f"{URL}/api/openapi.json")

    r = requests.get(f"{URL}/api/openapi.json", timeout=30)
    expect(schema, "GET", "/api/openapi.json", r, 200, "the document")
    for page in ("/", "/index.html"):
        expect(schema, "GET", page, requests.get(URL + page, timeout=30), 200, f"web page {page}")
    expect(schema, "GET", "/healthz", requests.get(f"{URL}/healthz", timeout=30), 200, "healthz")
    r = requests.get(f"{URL}/api/balance", params={"api": KEY}, timeout=30)
    expect(schema, "GET", "/api/balance", r, 200, "balance (?api=)")
    r = requests.get(f"{URL}/api/balance", headers={"X-API-Key": "nope"}, timeout=30)
    expect(schema, "GET", "/api/balance", r, 401, "balance, wrong key")

    # A page: in process at first, then done with its lines.
    r = solve({}, image("page_0.png"))
    expect(schema, "POST", "/api/ocr/solve", r, 200, "solve page_0.png")
    task = r.json()["task_id"]
    r = requests.get(f"{URL}/api/ocr/result/{task}", params={"details": 1}, timeout=30)
    expect(schema, "GET", RESULT, r, 200, "page_0 polled at once")
    check(r.json()["result"] == "in_process", f"page_0 polled at once is in_process: {r.json()['result'][:40]!r}")
    body = wait_done(schema, task, "page_0 done, details=1")
    check(body["status"] == "ok" and len(body.get("pages", [])) == 1
          and len(body["pages"][0]["lines"]) >= 10, "page_0 done: one page of lines")
    r = requests.get(f"{URL}/api/ocr/result/{task}", params={"api": KEY}, timeout=30)
    expect(schema, "GET", RESULT, r, 200, "page_0 done, spec request (?api=, no details)")
    check("pages" not in r.json(), "no pages without details=1")

    # A two-page document, with hints.
    r = solve({"case": "lower", "max_len": "200", "single_line": "0"}, image("two-pages-g4-miniswhite.tif"))
    expect(schema, "POST", "/api/ocr/solve", r, 200, "solve a two-page TIFF with hints")
    body = wait_done(schema, r.json()["task_id"], "two-page TIFF done, details=1")
    check(len(body.get("pages", [])) == 2 and body["result"].count("\f") == 1,
          "two-page TIFF: two pages, one form feed")

    # A failed task: a PNG signature passes the upload check, the rest does not decode.
    r = solve({}, {"image": ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x42" * 200)})
    expect(schema, "POST", "/api/ocr/solve", r, 200, "solve a broken PNG")
    body = wait_done(schema, r.json()["task_id"], "broken PNG failed")
    check(body["status"] == "fail", "broken PNG: status fail")
    print("     failed task's result:", json.dumps(body["result"]))

    # Refusals.
    expect(schema, "POST", "/api/ocr/solve", solve({}, image("line_001.png"), key=KEY_EMPTY), 402,
           "solve with no credits")
    expect(schema, "POST", "/api/ocr/solve", solve({}, image("line_001.png"), key="0" * 40), 401,
           "solve with an unknown key")
    expect(schema, "POST", "/api/ocr/solve", solve({}, {"image": ("big.bin", b"\0" * (1 << 20 | 1))}),
           413, "solve over --max-upload")
    expect(schema, "POST", "/api/ocr/solve", solve({}, image("three-pages-g4.tif")), 413,
           "solve a three-page TIFF over --max-pages 2")
    expect(schema, "POST", "/api/ocr/solve", solve({"min_len": "7", "max_len": "6"}, image("line_001.png")),
           400, "solve with min_len > max_len")
    expect(schema, "POST", "/api/ocr/solve", solve({}, {"image": ("x.txt", b"hello")}), 400,
           "solve a text file")
    r = requests.post(f"{URL}/api/ocr/solve", data=b"not multipart", headers={"X-API-Key": KEY}, timeout=30)
    expect(schema, "POST", "/api/ocr/solve", r, 400, "solve without multipart")
    r = requests.get(f"{URL}/api/ocr/result/{uuid.uuid4()}", params={"api": KEY}, timeout=30)
    expect(schema, "GET", RESULT, r, 404, "result of an unknown task")
    r = requests.get(f"{URL}/api/ocr/result/{task}", params={"wait": "soon"}, timeout=30)
    expect(schema, "GET", RESULT, r, 400, "result with wait=soon")

    if failures:
        print(f"\n{len(failures)} check(s) failed:", *failures, sep="\n  ")
        return 1
    print("\nevery state conforms to the document")
    return 0


if __name__ == "__main__":
    sys.exit(main())
