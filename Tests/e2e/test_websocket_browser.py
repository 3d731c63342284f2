"""A real browser: headless Chromium's `WebSocket` receives published events, as JSON envelopes
and as raw data (`?format=raw`). Skipped when chromium/chromedriver or selenium are missing
(scripts/test installs them)."""
import json
import os
import shutil
import tempfile
import time

import httpx
import pytest

CHROME = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

selenium = pytest.importorskip("selenium")
if not (os.path.exists(CHROME) and os.path.exists(DRIVER)):
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)


@pytest.fixture
def browser():
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="pushd-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROME
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--user-data-dir=" + profile):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=DRIVER, log_output=os.devnull))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# The README's snippet, as a page would run it.
OPEN_JS = """
window.got = {envelope: [], raw: [], open: 0};
for (const [kind, path] of [["envelope", "/topics/browser"], ["raw", "/topics/browser?format=raw"]]) {
  const ws = new WebSocket(`ws://${location.host}${path}`);
  ws.onopen = () => { window.got.open += 1; };
  ws.onmessage = (e) => { window.got[kind].push(e.data); };
}
"""


def test_chromium_websocket_receives_envelope_and_raw(pushd, browser):
    browser.get(pushd.url("/healthz"))  # same origin as the daemon
    browser.execute_script(OPEN_JS)
    end = time.monotonic() + 10
    while browser.execute_script("return window.got.open") < 2:
        assert time.monotonic() < end, "the browser's WebSockets did not open"
        time.sleep(0.05)
    ids = [httpx.post(pushd.url("/topics/browser?event=note"), content=f"hello {i} ✓".encode()).json()["id"]
           for i in range(3)]
    while len(browser.execute_script("return window.got.raw")) < 3 or \
            len(browser.execute_script("return window.got.envelope")) < 3:
        assert time.monotonic() < end + 10, browser.execute_script("return window.got")
        time.sleep(0.05)
    got = browser.execute_script("return window.got")
    envelopes = [json.loads(m) for m in got["envelope"]]
    assert [e["id"] for e in envelopes] == ids
    assert all(e["topic"] == "browser" and e["event"] == "note" for e in envelopes)
    assert got["raw"] == [f"hello {i} ✓" for i in range(3)]


def _readme_websocket_snippet() -> str:
    """The README's browser WebSocket example (the <script> block that opens a WebSocket)."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for block in text.split("```html")[1:]:
        code = block.split("```")[0]
        if "new WebSocket" in code:
            return code.replace("<script>", "").replace("</script>", "")
    raise AssertionError("README has no WebSocket snippet")


def test_readme_websocket_snippet_works(pushd, browser):
    browser.get(pushd.url("/healthz"))
    code = _readme_websocket_snippet()
    # Capture what the snippet logs.
    browser.execute_script(
        "window.logged = []; const keep = (...a) => window.logged.push(a.map(String).join(' '));"
        "console.log = keep; console.warn = keep;" + code)
    time.sleep(1.0)  # connected and subscribed to "quotes" by command
    httpx.post(pushd.url("/topics/news?event=headline"), content=b"pushd ships WebSocket")
    httpx.post(pushd.url("/topics/quotes"), content=b"ACME 12.5")
    end = time.monotonic() + 10
    while len(browser.execute_script("return window.logged")) < 2:
        assert time.monotonic() < end, browser.execute_script("return window.logged")
        time.sleep(0.05)
    assert browser.execute_script("return window.logged") == [
        "news headline pushd ships WebSocket", "quotes undefined ACME 12.5"]


AUTH_PUBLISH_JS = """
window.pub = {messages: [], closed: false};
const ws = new WebSocket(`ws://${location.host}/topics/browser-pub`);
ws.onopen = () => {
  ws.send(JSON.stringify({op: "publish", topic: "browser-pub", data: "before auth", ref: "p0"}));
  ws.send(JSON.stringify({op: "auth", token: arguments[0], ref: "a"}));
  ws.send(JSON.stringify({op: "publish", topic: "browser-pub", data: "from the browser", ref: "p1"}));
};
ws.onmessage = (e) => { window.pub.messages.push(JSON.parse(e.data)); };
ws.onclose = () => { window.pub.closed = true; };
"""


@pytest.mark.pushd(env={"PUSHD_AUTH_PUBLISH_TOKENS": "browser-token-0123456789",
                        "PUSHD_WEBSOCKET_ALLOW_PUBLISH": "true"})
def test_chromium_websocket_publishes_after_the_auth_command(pushd, browser):
    """Publish auth is on and a browser cannot set `Authorization` on a WebSocket: the page sends
    its token with `{"op":"auth"}`, then publishes (docs/API.md "WebSocket auth command")."""
    browser.get(pushd.url("/healthz"))
    browser.execute_script(AUTH_PUBLISH_JS, "browser-token-0123456789")
    end = time.monotonic() + 10
    while len(browser.execute_script("return window.pub.messages")) < 4:
        assert time.monotonic() < end, browser.execute_script("return window.pub")
        time.sleep(0.05)
    msgs = browser.execute_script("return window.pub.messages")
    by_ref = {m.get("ref"): m for m in msgs if "ref" in m}
    assert by_ref["p0"]["op"] == "error" and by_ref["p0"]["code"] == "forbidden", msgs
    assert by_ref["a"]["op"] == "ack", msgs
    assert by_ref["p1"]["op"] == "ack", msgs
    events = [m for m in msgs if "data" in m and "op" not in m]
    assert events == [{"id": by_ref["p1"]["id"], "topic": "browser-pub", "data": "from the browser"}], msgs
    assert not browser.execute_script("return window.pub.closed")
