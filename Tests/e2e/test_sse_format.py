"""SSE wire format: line splitting of data, `event:` names, rejected event / topic names."""
import asyncio
import json
import re

import httpx
import pytest
from httpx_sse import aconnect_sse

from e2e_util import AsyncSSE, SyncConn, assert_json_error, request_bytes


async def _collect_httpx_sse(base_url, path, n, ready, out):
    async with httpx.AsyncClient(timeout=httpx.Timeout(20.0)) as c:
        async with aconnect_sse(c, "GET", base_url + path) as es:
            assert es.response.status_code == 200
            async for sse in es.aiter_sse():
                if not sse.data:
                    if sse.retry is not None:
                        ready.set()
                    continue
                out.append(sse)
                if len(out) >= n:
                    return


def test_data_line_breaks_and_event_name(pushd):
    """`a\\rb`, `a\\r\\nb`, `a\\nb` all arrive as data `a\\nb`; `?event=news` as `event: news`."""
    bodies = [b"a\rb", b"a\r\nb", b"a\nb", b"one\r\ntwo\rthree\nfour", b"plain"]

    async def run():
        ready = asyncio.Event()
        got = []
        task = asyncio.ensure_future(
            _collect_httpx_sse(pushd.base_url, "/topics/fmt", len(bodies) + 1, ready, got))
        raw = await AsyncSSE.open(pushd.port, "/topics/fmt", keep_raw=True)
        try:
            await asyncio.wait_for(ready.wait(), 10)
            ids = []
            async with httpx.AsyncClient(timeout=10) as c:
                for b in bodies:
                    r = await c.post(pushd.url("/topics/fmt"), content=b)
                    assert r.status_code == 200, r.text
                    ids.append(r.json()["id"])
                r = await c.post(pushd.url("/topics/fmt?event=news"), content=b"headline")
                assert r.status_code == 200, r.text
                ids.append(r.json()["id"])
            await asyncio.wait_for(task, 10)
            await raw.wait_events(len(bodies) + 1, 10)
        finally:
            task.cancel()
            await raw.close()
        want = ["a\nb", "a\nb", "a\nb", "one\ntwo\nthree\nfour", "plain", "headline"]
        assert [e.data for e in got] == want
        assert [e.id for e in got] == ids
        assert [e.event for e in got] == ["message"] * 5 + ["news"]  # httpx-sse default type
        # exact bytes on the wire: `id`, optional `event`, one `data:` per line, blank line
        text = bytes(raw.raw).decode()
        assert f"id: {ids[0]}\ndata: a\ndata: b\n\n" in text, text
        assert f"id: {ids[3]}\ndata: one\ndata: two\ndata: three\ndata: four\n\n" in text, text
        assert f"id: {ids[5]}\nevent: news\ndata: headline\n\n" in text, text
        assert "\r" not in text, "the stream must not carry a CR from the data"
        assert text.index("retry:") < text.index("id:"), "retry: must precede the first event"

    asyncio.run(run())


@pytest.mark.parametrize("bad_event", ["a%0Ab", "a%0Db", "a%20b", "x" * 65, "caf%C3%A9"])
def test_bad_event_name_rejected_and_not_delivered(pushd, bad_event):
    async def run():
        sub = await AsyncSSE.open(pushd.port, "/topics/evt")
        try:
            async with httpx.AsyncClient(timeout=10) as c:
                r = await c.post(pushd.url(f"/topics/evt?event={bad_event}"), content=b"poison")
                assert r.status_code == 400, (r.status_code, r.text)
                assert r.headers["content-type"].startswith("application/json")
                doc = r.json()
                assert doc.get("error") and doc.get("message"), doc
                await asyncio.sleep(0.5)
                assert sub.events == [], f"rejected publish was delivered: {sub.events}"
                r = await c.post(pushd.url("/topics/evt?event=ok"), content=b"valid")
                assert r.status_code == 200, r.text
                good_id = r.json()["id"]
            await sub.wait_events(1, 10)
            assert [(e.id, e.event, e.data) for e in sub.events] == [(good_id, "ok", "valid")]
        finally:
            await sub.close()

    asyncio.run(run())


BAD_TOPICS = [
    "a//b",          # empty segment
    "a/",            # trailing empty segment
    "/a",            # leading empty segment (path /topics//a)
    "a/../b",        # `..` segment
    "..",
    "a%20b",         # space
    "a%0Ab",         # newline
    "a%22b",         # double quote
    "a<b",
    "x" * 257,       # too long
]


@pytest.mark.parametrize("topic", BAD_TOPICS, ids=lambda t: t if len(t) < 20 else f"len{len(t)}")
def test_bad_topic_names_400(pushd, topic):
    # raw socket: HTTP client libraries would normalise `..` and `//` away
    for method, body in (("POST", b"x"), ("GET", None)):
        with SyncConn(pushd.port) as c:
            c.send(request_bytes(method, f"/topics/{topic}", body))
            assert_json_error(c.read_response(), 400)
    with SyncConn(pushd.port) as c:
        c.send(request_bytes("GET", f"/subscribe?topic=ok&topic={topic}"))
        assert_json_error(c.read_response(), 400)


def test_topic_name_limits_accepted(pushd):
    """The full allowed alphabet and a 256-byte name are valid topics."""
    names = ["A-Za-z0-9._~:@!$&'()*+,;=", "x" * 256, "a/b/c", "a..b"]
    with SyncConn(pushd.port) as c:
        for t in names:
            c.send(request_bytes("POST", f"/topics/{t}", b"fine"))
            r = c.read_response()
            assert r.status == 200, (t, r.status, r.body)
            assert json.loads(r.body)["topic"] == t
            assert re.match(r"^\d+-\d+$", json.loads(r.body)["id"])
