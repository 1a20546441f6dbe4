"""Real-browser tests of the web page served at GET /.

Headless Debian Chromium (/usr/bin/chromium) driven by Selenium through
/usr/bin/chromedriver. Run by scripts/browser-test.sh, which starts the real
binary and sets:

  OCRBOX_URL        base URL of the server, e.g. http://127.0.0.1:40123
  OCRBOX_KEY        a key with credits (20)
  OCRBOX_KEY_EMPTY  a key with 0 credits
  OCRBOX_SHOTS      screenshot folder (default target/browser-shots)

Every test talks to the real server: real fixture images and a real scanned
PDF through the <input type=file>, recognised text, credits, line boxes and
errors (402, 401) as a person sees them.
"""
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
URL = os.environ.get("OCRBOX_URL", "").rstrip("/")
KEY = os.environ.get("OCRBOX_KEY", "")
KEY_EMPTY = os.environ.get("OCRBOX_KEY_EMPTY", "")
SHOTS = Path(os.environ.get("OCRBOX_SHOTS") or ROOT / "target" / "browser-shots")
OCR_TIMEOUT = float(os.environ.get("OCRBOX_OCR_TIMEOUT", "120"))  # inference is slow here

pytestmark = pytest.mark.skipif(not (URL and KEY and KEY_EMPTY),
                                reason="OCRBOX_URL, OCRBOX_KEY, OCRBOX_KEY_EMPTY not set "
                                       "(run scripts/browser-test.sh)")


# ---------------------------------------------------------------- fixtures / helpers

@pytest.fixture
def downloads():
    d = tempfile.mkdtemp(prefix="ocrbox-dl-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def driver(downloads):
    profile = tempfile.mkdtemp(prefix="ocrbox-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    # The flags this machine's closed network needs (no background fetches to Google).
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900",
              f"--user-data-dir={profile}"):
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(30)
    d.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(d, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SHOTS / f"{name}.png"))


def viewport(d, w, h, mobile=False):
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile})


def wait(d, cond, timeout=15, msg=""):
    return WebDriverWait(d, timeout, poll_frequency=0.2).until(lambda _: cond(), msg)


def js(d, script, *args):
    return d.execute_script(script, *args)


def el(d, id_):
    return d.find_element(By.ID, id_)


def open_with_key(d, key, expect_credits=True):
    d.get(f"{URL}/#key={key}")
    wait(d, lambda: js(d, "return localStorage.getItem('ocrbox.key')") == key, msg="key not stored")
    if expect_credits:
        wait(d, lambda: el(d, "credits").get_attribute("data-solves") is not None,
             msg="credits not shown")


def credits(d):
    v = el(d, "credits").get_attribute("data-solves")
    return None if v is None else int(v)


def record_states(d):
    """Records every text and state #status shows from now on (window.__states)."""
    js(d, """
      window.__states = [];
      const s = document.getElementById('status');
      const note = () => window.__states.push(s.dataset.state + ': ' + s.textContent);
      note();
      new MutationObserver(note).observe(s, {subtree: true, childList: true, characterData: true, attributes: true});
    """)


def upload(d, path):
    el(d, "file").send_keys(str(path))


def wait_text(d, timeout=OCR_TIMEOUT):
    def done():
        if el(d, "error").is_displayed():
            raise AssertionError("page shows an error: " + el(d, "error").text)
        return el(d, "text").text.strip() and js(d, "return document.getElementById('status').dataset.state") == "done"
    wait(d, done, timeout, "no text within %ss" % timeout)
    return el(d, "text").text


def wait_error(d, timeout=OCR_TIMEOUT):
    wait(d, lambda: el(d, "error").is_displayed() and el(d, "error").text.strip(), timeout,
         "no error shown")
    return el(d, "error").text


def words(s):
    return [w for w in (re.sub(r"[^\w]", "", t.lower()) for t in s.split()) if len(w) >= 2]


def label(name):
    for row in (FIXTURES / "labels.tsv").read_text(encoding="utf-8").splitlines():
        f, _, text = row.partition("\t")
        if f == name:
            return text.replace("\\n", "\n")
    raise KeyError(name)


def assert_most_words(got, expected, share=0.7):
    want = words(expected)
    have = set(words(got))
    found = [w for w in want if w in have]
    assert len(found) >= share * len(want), (
        f"only {len(found)}/{len(want)} label words read; missing {sorted(set(want) - have)[:20]}\n"
        f"got: {got!r}")


def requested_urls(d):
    """Every URL the browser asked for (network log), plus the page's resource timings."""
    urls = []
    for entry in d.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    urls += js(d, "return performance.getEntries().map(e => e.name)")
    return urls


def assert_same_origin_only(d, urls):
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(URL))
    # Only network schemes: the browser's own chrome:// pages (the start tab) are not the page's.
    foreign = [u for u in urls
               if u.split(":", 1)[0].lower() in ("http", "https", "ws", "wss", "ftp")
               and not (u.startswith(origin + "/") or u == origin)]
    assert not foreign, f"requests to other origins: {foreign}"
    # The fragment (#key=...) never leaves the browser; the rest of a URL does.
    leaked = [u for u in (u.split("#", 1)[0] for u in urls) if KEY in u or "api=" in u]
    assert not leaked, f"key in a URL: {leaked}"


def csp_violations(d):
    return [e["message"] for e in d.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]


# ---------------------------------------------------------------- end-to-end tests

CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src blob: data:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGE = ROOT / "src" / "http" / "page.html"


@pytest.fixture(scope="module", autouse=True)
def page_served():
    """Fails every test at once, plainly, when GET / does not give the page."""
    try:
        with urllib.request.urlopen(URL + "/", timeout=10) as r:
            ctype, body, csp = r.headers.get("Content-Type"), r.read(), r.headers.get("Content-Security-Policy")
    except urllib.error.HTTPError as e:
        pytest.fail(f"GET / answered {e.code}: this binary does not serve the page "
                    "(an older build?)")
    return ctype, body, csp


def test_page_is_served_self_contained_with_csp(page_served):
    ctype, body, csp = page_served
    assert ctype == "text/html; charset=utf-8"
    assert csp == CSP
    assert body == PAGE.read_bytes(), "served page differs from src/http/page.html (stale build?)"
    assert len(body) < 25_000
    # No external resource: the only absolute URL is the SVG namespace name.
    assert re.findall(rb"(?:https?:)?//[\w.-]+\.[a-z]{2,}", body.replace(b"http://www.w3.org/2000/svg", b"")) == []

def test_key_from_fragment_is_stored_and_removed_from_address(driver):
    d = driver
    open_with_key(d, KEY)
    assert js(d, "return location.hash") == ""
    assert "#" not in d.current_url and KEY not in d.current_url
    assert urlsplit(d.current_url).path == "/"
    assert credits(d) is not None
    assert not el(d, "error").is_displayed()
    assert el(d, "change-key").is_displayed() and el(d, "forget-key").is_displayed()
    assert not el(d, "key").is_displayed()  # key input folded away once saved
    shot(d, "empty")

    # Forget, then enter it again by keyboard only.
    el(d, "forget-key").click()
    assert js(d, "return localStorage.getItem('ocrbox.key')") is None
    assert el(d, "key").is_displayed()
    assert js(d, "return document.activeElement.id") == "key"
    assert not el(d, "cancel-key").is_displayed()  # nothing to go back to
    assert credits(d) is None
    ActionChains(d).send_keys(KEY, Keys.ENTER).perform()
    wait(d, lambda: js(d, "return localStorage.getItem('ocrbox.key')") == KEY)
    wait(d, lambda: credits(d) is not None, msg="credits not shown after saving the key")
    # A reload keeps it.
    d.get(URL + "/")
    wait(d, lambda: credits(d) is not None, msg="saved key not used after reload")


def test_keyboard_reaches_file_control_and_everything_is_labelled(driver):
    d = driver
    open_with_key(d, KEY)
    js(d, "document.activeElement && document.activeElement.blur()")
    el(d, "status").click()  # start tabbing from the page body
    seen = []
    for _ in range(20):
        ActionChains(d).send_keys(Keys.TAB).perform()
        seen.append(js(d, "return document.activeElement.id || document.activeElement.tagName"))
        if seen[-1] == "file":
            break
    assert seen[-1] == "file", f"Tab order never reached #file: {seen}"
    # The focused (visually hidden) input shows focus on its button-like label.
    outline = js(d, "return getComputedStyle(document.querySelector('label[for=file]')).outlineStyle")
    assert outline not in ("none", ""), "no visible focus on the file control"
    # Every control has an accessible name.
    unnamed = js(d, """
      return [...document.querySelectorAll('button, input, textarea, select, [tabindex]')].filter(e => {
        if (e.getAttribute('aria-label')) return false;
        if (e.labels && e.labels.length) return false;
        if (e.tagName === 'BUTTON' && e.textContent.trim()) return false;
        return true;
      }).map(e => e.id || e.outerHTML.slice(0, 60));
    """)
    assert not unnamed, f"controls without a label: {unnamed}"


def test_line_image_is_read_with_boxes_and_one_credit_charged(driver, downloads):
    d = driver
    open_with_key(d, KEY)
    before = credits(d)
    record_states(d)
    upload(d, FIXTURES / "line_001.png")
    wait(d, lambda: js(d, "return document.getElementById('status').dataset.state") in ("busy", "done"))
    shot(d, "reading")
    text = wait_text(d)
    states = js(d, "return window.__states")
    assert any(s.startswith("busy: ") and "Reading" in s for s in states), states
    assert_most_words(text, label("line_001.png"), share=0.8)
    wait(d, lambda: credits(d) == before - 1, msg=f"credits {credits(d)}, expected {before - 1}")
    lines = int(el(d, "preview").get_attribute("data-lines"))
    polys = len(d.find_elements(By.CSS_SELECTOR, "#preview svg polygon"))
    assert lines >= 1 and polys == lines, (lines, polys)
    assert d.find_element(By.CSS_SELECTOR, "#preview img").get_attribute("src").startswith("blob:")
    wait(d, lambda: js(d, "return document.querySelector('#preview img').naturalWidth") == 786)
    shot(d, "text")

    # Download .txt writes the text.
    el(d, "download").click()
    path = downloads / "line_001.txt"
    wait(d, lambda: path.exists() and path.stat().st_size > 0, 10, "no line_001.txt downloaded")
    assert path.read_text(encoding="utf-8").strip() == text.strip()
    # Copy puts it on the clipboard.
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(URL))
    d.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    el(d, "copy").click()
    wait(d, lambda: "Copied" in el(d, "copy").text, 5, "copy gave no feedback")
    clip = d.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('ERR ' + e))")
    assert clip.strip() == text.strip()


def test_page_image_is_read_and_fits_phone_and_kiosk(driver):
    d = driver
    open_with_key(d, KEY)
    before = credits(d)
    upload(d, FIXTURES / "page_0.png")
    text = wait_text(d)
    assert_most_words(text, label("page_0.png"))
    wait(d, lambda: credits(d) == before - 1, msg=f"credits {credits(d)}, expected {before - 1}")
    assert int(el(d, "preview").get_attribute("data-lines")) >= 10

    # No request left the origin, the key never went into a URL, and the CSP was never hit.
    assert_same_origin_only(d, requested_urls(d))
    assert not csp_violations(d)

    for name, w, h, mobile in (("phone", 360, 740, True), ("kiosk", 800, 480, False)):
        viewport(d, w, h, mobile)
        js(d, "window.scrollTo(0, 0)")
        time.sleep(0.3)
        shot(d, name)
        assert js(d, "return document.documentElement.scrollWidth") <= w, f"horizontal scroll at {w}px"
        for id_ in ("file", "status", "text", "copy", "download", "credits"):
            box = js(d, "const r = (arguments[0] === 'file' ? document.querySelector('label[for=file]')"
                        " : document.getElementById(arguments[0])).getBoundingClientRect();"
                        " return [r.left, r.right, r.width]", id_)
            assert box[0] >= 0 and box[1] <= w + 0.5 and box[2] > 0, (name, id_, box)
        if name == "kiosk":  # one screen: the page does not scroll, the text box does
            sh = js(d, "return document.documentElement.scrollHeight")
            assert sh <= h, f"page is {sh}px tall on an {w}x{h} screen"
            bottom = js(d, "return document.getElementById('text').getBoundingClientRect().bottom")
            assert bottom <= h, f"text box ends at y={bottom} on an {w}x{h} screen"


def test_no_credits_says_so(driver):
    d = driver
    open_with_key(d, KEY_EMPTY)
    assert credits(d) == 0
    upload(d, FIXTURES / "line_001.png")
    msg = wait_error(d, 30)
    assert "No credits left" in msg and "administrator" in msg, msg
    assert "402" not in msg and "{" not in msg
    assert not el(d, "result").is_displayed()
    shot(d, "error-402")


def test_wrong_key_says_so(driver):
    d = driver
    wrong = "0" * 40
    open_with_key(d, wrong, expect_credits=False)
    msg = wait_error(d, 15)  # from /api/balance on load
    assert "API key was not accepted" in msg, msg
    assert credits(d) is None
    assert el(d, "key").is_displayed()  # the key editor opens to fix it
    upload(d, FIXTURES / "line_001.png")
    msg = wait_error(d, 30)  # from the upload
    assert "API key was not accepted" in msg, msg
    shot(d, "error-401")


def test_pdf_shows_page_separators(driver):
    pdf = FIXTURES / "two-pages.pdf"
    if not pdf.exists():
        pytest.skip("tests/fixtures/two-pages.pdf absent")
    d = driver
    open_with_key(d, KEY)
    upload(d, pdf)
    text = wait_text(d)
    assert "— page 1 —" in text and "— page 2 —" in text, text
    assert "2 pages" in el(d, "preview").text
    assert "2 pages" in el(d, "status").text
    shot(d, "pdf")
