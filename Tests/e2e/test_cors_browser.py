"""CORS in a real browser (issue #6, Build 3): headless Chromium on a page of one origin
(`http://127.0.0.1:A`, a second pushd's /healthz) calls pushd B cross-origin. From an allowed
origin, `fetch` with `Authorization` passes the preflight and reads the publish JSON, and an
`EventSource(..., {withCredentials: true})` to a private topic with `?access_token=` opens and
receives events (nothing in the stream head breaks EventSource). From a disallowed origin
(`http://localhost:A`) the browser blocks both. Skipped when Chromium is not installed."""
import shutil
import tempfile
import time

import httpx

from auth_util import STATIC_TOKEN, Keys, bearer, claims, jwt, write_config
from test_browser_eventsource import make_driver

FETCH_JS = r"""
const done = arguments[arguments.length - 1];
fetch(arguments[0], {method: 'POST', headers: {'Authorization': 'Bearer ' + arguments[1],
                                              'Content-Type': 'text/plain'}, body: 'from-page'})
  .then(r => r.json().then(j => done({status: r.status, body: j})))
  .catch(e => done({error: String(e)}));
"""

ES_JS = r"""
const R = window.__r = {events: [], opens: 0, errors: 0};
const es = new EventSource(arguments[0], {withCredentials: true});
es.onopen = () => { R.opens++; };
es.onerror = () => { R.errors++; };
es.onmessage = (e) => R.events.push(e.data);
window.__es = es;
return true;
"""


def open_page(driver, url: str) -> None:
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    driver.get(url)
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_browser_cross_origin_publish_and_eventsource(pushd_factory, tmp_path):
    page = pushd_factory()
    allowed = f"http://127.0.0.1:{page.port}"
    keys = Keys(tmp_path)
    extra = f'cors:\n  allowed_origins: ["{allowed}"]\n  allow_credentials: true\n'
    target = pushd_factory(args=["--config", str(write_config(tmp_path, keys, extra))])
    tok = jwt("ES256", claims(subscribe=["private/*"]), keys)
    profile = tempfile.mkdtemp(prefix="pushd-e2e-chromium-")
    driver = None
    try:
        driver = make_driver(profile)
        driver.set_script_timeout(10)
        open_page(driver, page.url("/healthz"))
        assert driver.execute_script("return location.origin;") == allowed
        r = driver.execute_async_script(FETCH_JS, target.url("/topics/news"), STATIC_TOKEN)
        assert r.get("status") == 200 and r["body"]["topic"] == "news", r

        driver.execute_script(ES_JS, target.url(f"/topics/private/b?access_token={tok}"))
        end = time.monotonic() + 10
        while not driver.execute_script("return window.__es.readyState === 1;"):
            assert time.monotonic() < end, "EventSource never opened cross-origin"
            time.sleep(0.05)
        with httpx.Client(base_url=target.base_url, timeout=5) as c:
            for i in range(5):
                assert c.post("/topics/private/b", content=f"m{i}", headers=bearer(STATIC_TOKEN)).status_code == 200
        end = time.monotonic() + 10
        while driver.execute_script("return window.__r.events.length;") < 5:
            assert time.monotonic() < end, driver.execute_script("return window.__r;")
            time.sleep(0.05)
        assert driver.execute_script("return window.__r.events;") == [f"m{i}" for i in range(5)]
        driver.execute_script("window.__es.close();")

        # Another origin (localhost is not 127.0.0.1): the browser blocks fetch and EventSource.
        open_page(driver, f"http://localhost:{page.port}/healthz")
        r = driver.execute_async_script(FETCH_JS, target.url("/topics/news"), STATIC_TOKEN)
        assert "error" in r, f"a disallowed origin read the answer: {r}"
        driver.execute_script(ES_JS, target.url(f"/topics/private/b?access_token={tok}"))
        time.sleep(1.0)
        with httpx.Client(base_url=target.base_url, timeout=5) as c:
            c.post("/topics/private/b", content="late", headers=bearer(STATIC_TOKEN))
        time.sleep(0.5)
        state = driver.execute_script("return window.__r;")
        assert state["events"] == [] and state["opens"] == 0, state
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
