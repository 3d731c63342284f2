"""Fan-out: 200 SSE subscribers on one topic, 2,000 events from concurrent keep-alive publishers.

199 subscribers are raw asyncio sockets (own parser, fast); one goes through httpx + httpx-sse.
Every subscriber must receive every event exactly once, in id order; ids are `^\\d+-\\d+$`,
unique and strictly increasing per publisher connection.
"""
import asyncio
import time

import httpx
import pytest
from httpx_sse import aconnect_sse

from checks import assert_streams
from e2e_util import ID_RE, AsyncSSE, assert_strictly_increasing, id_key, wait_progress

N_SUBS = 200
N_EVENTS = 2000
N_PUBLISHERS = 4
TOPIC = "fanout/main"


async def _httpx_sse_subscriber(base_url: str, n: int, ready: asyncio.Event, out: list):
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0), limits=limits) as c:
        async with aconnect_sse(c, "GET", f"{base_url}/topics/{TOPIC}") as es:
            assert es.response.status_code == 200
            assert es.response.headers["content-type"].startswith("text/event-stream")
            async for sse in es.aiter_sse():
                if sse.retry is not None and not sse.data:
                    ready.set()  # the retry: preamble arrived: subscribed
                    continue
                if not sse.data:
                    continue
                out.append((sse.id, sse.data))
                if len(out) >= n:
                    return


async def _publisher(base_url: str, jobs: list[int], results: list):
    async with httpx.AsyncClient(timeout=httpx.Timeout(20.0),
                                 limits=httpx.Limits(max_connections=1)) as c:
        mine = []
        for i in jobs:
            data = f"fanout event {i:05d}"
            r = await c.post(f"{base_url}/topics/{TOPIC}", content=data.encode())
            assert r.status_code == 200, (r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json")
            doc = r.json()
            assert doc["topic"] == TOPIC, doc
            assert ID_RE.match(doc["id"]), doc
            mine.append((doc["id"], data))
        # one connection publishes sequentially, so its own ids must increase
        assert_strictly_increasing([eid for eid, _ in mine], "ids on one publisher connection")
        results.extend(mine)


async def _run(pushd):
    ready = asyncio.Event()
    via_httpx: list = []
    httpx_task = asyncio.ensure_future(_httpx_sse_subscriber(pushd.base_url, N_EVENTS, ready, via_httpx))
    subs = await asyncio.wait_for(asyncio.gather(
        *[AsyncSSE.open(pushd.port, f"/topics/{TOPIC}") for _ in range(N_SUBS - 1)]), 30)
    try:
        await asyncio.wait_for(ready.wait(), 10)
        for s in subs:
            assert s.status == 200
        published: list = []
        t0 = time.monotonic()
        share = [list(range(k, N_EVENTS, N_PUBLISHERS)) for k in range(N_PUBLISHERS)]
        await asyncio.wait_for(asyncio.gather(
            *[_publisher(pushd.base_url, jobs, published) for jobs in share]), 120)
        assert len(published) == N_EVENTS
        want = sorted(published, key=lambda x: id_key(x[0]))
        assert len({eid for eid, _ in want}) == N_EVENTS, "publish returned duplicate ids"

        t_pub = time.monotonic() - t0
        await wait_progress(subs, lambda s: len(s.events) >= N_EVENTS, 60, stall=5)
        try:
            await asyncio.wait_for(asyncio.shield(httpx_task), 5)
        except asyncio.TimeoutError:
            pass  # compared below: the httpx-sse stream is short
        await asyncio.sleep(0.2)  # anything extra (duplicates) would show up now
        print(f"[{pushd.backend}] published {N_EVENTS} in {t_pub:.2f}s, "
              f"all delivered after {time.monotonic() - t0:.2f}s")
        got = {f"raw{i}": [(e.id, e.data) for e in s.events] for i, s in enumerate(subs)}
        got["httpx-sse"] = via_httpx
        assert_streams(got, want)
    finally:
        httpx_task.cancel()
        await asyncio.gather(*[s.close() for s in subs], return_exceptions=True)


@pytest.mark.timeout(240)
def test_fanout_200_subscribers_2000_events(pushd):
    asyncio.run(_run(pushd))
