"""Topic isolation and multi-topic subscriptions.

2 topics x 100 SSE subscribers each get only their own topic's events; a
`/subscribe?topic=a&topic=b` subscriber (raw socket and httpx-sse) gets both, in id order.
"""
import asyncio

import httpx
from httpx_sse import aconnect_sse

from checks import assert_streams
from e2e_util import AsyncPublisher, AsyncSSE, assert_strictly_increasing, id_key, wait_progress

N_PER_TOPIC = 100
N_EVENTS = 150  # per topic
TOPICS = ("alpha", "beta/sub")


async def _publish_all(port: int, topic: str, out: list):
    async with AsyncPublisher(port) as p:
        for i in range(N_EVENTS):
            data = f"{topic} #{i}"
            out.append((await p.publish(topic, data.encode()), data, topic))
            if i % 10 == 0:
                await asyncio.sleep(0)  # let the other topic's publisher interleave


async def _httpx_multi(base_url: str, query: str, n: int, ready: asyncio.Event, out: list):
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as c:
        async with aconnect_sse(c, "GET", f"{base_url}/subscribe?{query}") as es:
            assert es.response.status_code == 200
            async for sse in es.aiter_sse():
                if not sse.data:
                    if sse.retry is not None:
                        ready.set()
                    continue
                out.append((sse.id, sse.data))
                if len(out) >= n:
                    return


async def _run(pushd):
    query = "&".join(f"topic={t}" for t in TOPICS)
    ready = asyncio.Event()
    via_httpx: list = []
    htask = asyncio.ensure_future(_httpx_multi(pushd.base_url, query, 2 * N_EVENTS, ready, via_httpx))
    per_topic = {t: await asyncio.wait_for(asyncio.gather(
        *[AsyncSSE.open(pushd.port, f"/topics/{t}") for _ in range(N_PER_TOPIC)]), 30)
        for t in TOPICS}
    multi = await AsyncSSE.open(pushd.port, f"/subscribe?{query}")
    everyone = [s for subs in per_topic.values() for s in subs] + [multi]
    try:
        await asyncio.wait_for(ready.wait(), 10)
        published: list = []
        await asyncio.wait_for(asyncio.gather(
            *[_publish_all(pushd.port, t, published) for t in TOPICS]), 60)
        published.sort(key=lambda x: id_key(x[0]))
        want = {t: [(i, d) for i, d, tt in published if tt == t] for t in TOPICS}
        want_all = [(i, d) for i, d, _ in published]

        await wait_progress(per_topic[TOPICS[0]], lambda s: len(s.events) >= N_EVENTS, 30)
        await wait_progress(per_topic[TOPICS[1]], lambda s: len(s.events) >= N_EVENTS, 30)
        await wait_progress([multi], lambda s: len(s.events) >= 2 * N_EVENTS, 30)
        try:
            await asyncio.wait_for(asyncio.shield(htask), 5)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0.3)  # stray events from the other topic would arrive now
        for t in TOPICS:
            assert_streams({f"{t}[{k}]": [(e.id, e.data) for e in s.events]
                            for k, s in enumerate(per_topic[t])}, want[t])
        assert_strictly_increasing([e.id for e in multi.events], "multi-topic stream ids")
        assert_streams({"multi raw": [(e.id, e.data) for e in multi.events],
                        "multi httpx-sse": via_httpx}, want_all)
    finally:
        htask.cancel()
        await asyncio.gather(*[s.close() for s in everyone], return_exceptions=True)


def test_topics_isolated_and_multi_topic_in_id_order(pushd):
    asyncio.run(_run(pushd))
