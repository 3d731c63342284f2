"""A real browser resumes with Last-Event-ID (issue #3 acceptance): headless Chromium opens an
EventSource to pushd; pushd ends every stream after 1 s (`PUSHD_SSE_MAX_STREAM_AGE=1s`, retry
100 ms) while the test publishes 300 events over ~4 s; the browser reconnects by itself with
`Last-Event-ID`; at the end the page holds every event exactly once, in order, and no gap signal.

Same-origin without CORS: the browser first loads a page *of pushd's own origin* (`/healthz`,
plain text, with JavaScript disabled for that load), then the test injects the EventSource script
into it — the pattern of shared/tools/conformance/browser_check.py. No web-security flags, no
second server. Chromium: Debian `chromium` + `chromium-driver` (scripts/test installs them).
"""
import json
import os
import shutil
import tempfile
import time

import httpx
import pytest

from checks import diff_streams
from e2e_util import assert_strictly_increasing

N_EVENTS = 300
SPREAD_S = 4.0
TOPIC = "browser/es"

HARNESS_JS = r"""
const R = window.__r = {events: [], gaps: [], opens: 0, errors: 0};
const es = new EventSource(arguments[0]);
es.onopen = () => { R.opens++; };
es.onerror = () => { R.errors++; };
es.onmessage = (e) => R.events.push([e.lastEventId, e.data]);
es.addEventListener('pushd.gap', (e) => R.gaps.push(e.data));
window.__es = es;
return true;
"""


def make_driver(profile_dir: str):
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.skip(f"selenium not installed: {e}")
    chrome = os.environ.get("CHROME_BINARY", "/usr/bin/chromium")
    driver_bin = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
    if not (os.path.exists(chrome) and os.path.exists(driver_bin)):
        pytest.skip(f"chromium/chromedriver not installed ({chrome}, {driver_bin})")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=800,600", "--user-data-dir=" + profile_dir):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    try:
        return webdriver.Chrome(options=opts, service=Service(executable_path=driver_bin))
    except Exception as e:  # noqa: BLE001 - a browser that cannot start is a skip, not a fail
        pytest.skip(f"chromium could not start: {e!r}"[:500])


def sse_requests(driver, url_suffix: str, into: list) -> None:
    """Requests the browser sent to the SSE endpoint, with their Last-Event-ID (DevTools log)."""
    for entry in driver.get_log("performance"):
        try:
            msg = json.loads(entry["message"])["message"]
        except (KeyError, ValueError):
            continue
        if msg.get("method") in ("Network.requestWillBeSent", "Network.requestWillBeSentExtraInfo"):
            p = msg.get("params", {})
            req = p.get("request", {})
            if req and not req.get("url", "").endswith(url_suffix):
                continue
            hdrs = {k.lower(): v for k, v in (req.get("headers") or p.get("headers") or {}).items()}
            if req or "last-event-id" in hdrs or hdrs.get(":path", "").endswith(url_suffix):
                into.append((p.get("requestId"), msg["method"], hdrs.get("last-event-id")))


@pytest.mark.pushd(env={"PUSHD_SSE_MAX_STREAM_AGE": "1s", "PUSHD_SSE_RETRY": "100ms"})
def test_browser_eventsource_resumes_every_event_once_in_order(pushd):
    profile = tempfile.mkdtemp(prefix="pushd-e2e-chromium-")
    driver = None
    try:
        driver = make_driver(profile)
        driver.set_script_timeout(10)
        # A page of pushd's origin, scripts off while it loads; then inject the harness.
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        driver.get(pushd.url("/healthz"))
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
        assert driver.execute_script("return location.origin;") == pushd.base_url
        driver.execute_script(HARNESS_JS, f"/topics/{TOPIC}")
        end = time.monotonic() + 10
        while not driver.execute_script("return window.__es.readyState === 1;"):
            assert time.monotonic() < end, "EventSource never opened"
            time.sleep(0.02)

        published: list[tuple[str, str]] = []
        t0 = time.monotonic()
        with httpx.Client(base_url=pushd.base_url, timeout=5) as c:
            for i in range(N_EVENTS):
                data = f"browser event {i:04d}"
                r = c.post(f"/topics/{TOPIC}", content=data.encode())
                assert r.status_code == 200, r.text
                published.append((r.json()["id"], data))
                # spread over SPREAD_S seconds so several 1 s streams end mid-publish
                delay = t0 + SPREAD_S * (i + 1) / N_EVENTS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        t_pub = time.monotonic() - t0

        last = published[-1][0]
        end = time.monotonic() + 15
        while time.monotonic() < end:
            got_last = driver.execute_script(
                "const e = window.__r.events; return e.length ? e[e.length - 1][0] : null;")
            if got_last == last:
                break
            time.sleep(0.1)
        time.sleep(0.3)  # a duplicate delivered late would show up here
        r = driver.execute_script("return window.__r;")
        reqs: list = []
        sse_requests(driver, f"/topics/{TOPIC}", reqs)
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

    got = [tuple(e) for e in r["events"]]
    leids = [x[2] for x in reqs if x[2]]
    print(f"[{pushd.backend}] browser: {len(got)}/{N_EVENTS} events, {r['opens']} opens, "
          f"{r['errors']} error events, {len(r['gaps'])} gap signals; published in {t_pub:.1f}s; "
          f"reconnect requests carrying Last-Event-ID: {len(set(leids))}")
    assert r["gaps"] == [], f"gap signal(s) in the browser: {r['gaps']}"
    assert got == published, diff_streams(got, published)
    assert_strictly_increasing([e[0] for e in got], "browser event ids")
    assert r["opens"] >= 3, (f"the stream was not ended and resumed mid-publish ({r['opens']} "
                             f"opens in {t_pub:.1f}s with PUSHD_SSE_MAX_STREAM_AGE=1s)")
    ids = {e[0] for e in published}
    assert leids and all(x in ids for x in leids), (
        f"reconnects did not carry a Last-Event-ID of a delivered event: {leids[:5]}")
