"""Write coalescing (`subscriber.coalesce_delay`, `subscriber.coalesce_bytes`).

With a delay set, a stream's new events are held back up to the delay and go out together; an
event at least `coalesce_bytes` long goes at once; nothing is lost, duplicated or reordered for
SSE and WebSocket subscribers on many topics. Without it (the default) an event goes at once.
The delays here are long (400 ms) so the checks hold on a loaded machine: they test behaviour,
not speed.
"""
import asyncio
import json
import time

import pytest
import websockets

from checks import assert_streams
from e2e_util import AsyncPublisher, AsyncSSE

HOLD = {"PUSHD_SUBSCRIBER_COALESCE_DELAY": "400ms", "PUSHD_SUBSCRIBER_COALESCE_BYTES": "2KiB"}


async def _first_event_after_publish(pushd, data: bytes) -> float:
    """Seconds from a publish's response to its event reaching a subscriber."""
    sub = await AsyncSSE.open(pushd.port, "/topics/hold")
    try:
        async with AsyncPublisher(pushd.port) as p:
            await p.publish("hold", data)
            t0 = time.monotonic()
            await sub.wait_events(1, 10)
            return time.monotonic() - t0
    finally:
        await sub.close()


@pytest.mark.pushd(env=HOLD)
def test_small_event_is_held_back_up_to_the_delay(pushd):
    waited = asyncio.run(_first_event_after_publish(pushd, b"small"))
    # Held for the delay (400 ms from the first event), then sent: never at once, never much later.
    assert 0.25 <= waited <= 3.0, f"event arrived after {waited:.3f} s with coalesce_delay 400ms"


@pytest.mark.pushd(env=HOLD)
def test_event_over_coalesce_bytes_goes_at_once(pushd):
    waited = asyncio.run(_first_event_after_publish(pushd, b"x" * 4096))
    assert waited < 0.25, f"a 4 KiB event (coalesce_bytes 2KiB) waited {waited:.3f} s"


def test_default_sends_at_once(pushd):
    waited = asyncio.run(_first_event_after_publish(pushd, b"small"))
    assert waited < 0.25, f"coalescing is off by default, yet the event waited {waited:.3f} s"


N_TOPICS = 8
PER_TOPIC = 5
N_EVENTS = 300  # per topic


async def _many_topics(pushd):
    topics = [f"c/{i}" for i in range(N_TOPICS)]
    sse = {t: [await AsyncSSE.open(pushd.port, f"/topics/{t}") for _ in range(PER_TOPIC)] for t in topics}
    ws = {t: await websockets.connect(f"ws://127.0.0.1:{pushd.port}/topics/{t}", ping_interval=None,
                                      max_queue=None, max_size=None) for t in topics}
    published = {t: [] for t in topics}
    async with AsyncPublisher(pushd.port) as p:
        for i in range(N_EVENTS):
            for t in topics:
                published[t].append((await p.publish(t, f"{t} #{i}".encode()), f"{t} #{i}"))
    for t in topics:
        for s in sse[t]:
            await s.wait_events(N_EVENTS, 30)
        assert_streams({f"SSE {t} #{k}": [(e.id, e.data) for e in s.events] for k, s in enumerate(sse[t])},
                       published[t])
        got = []
        while len(got) < N_EVENTS:
            doc = json.loads(await asyncio.wait_for(ws[t].recv(), 30))
            if "op" not in doc:
                got.append((doc["id"], doc["data"]))
        assert got == published[t], f"WebSocket {t}: events lost, duplicated or reordered"
        await ws[t].close()
        for s in sse[t]:
            await s.close()


@pytest.mark.pushd(env={"PUSHD_SUBSCRIBER_COALESCE_DELAY": "20ms"})
def test_many_topics_with_coalescing_lose_nothing(pushd):
    asyncio.run(_many_topics(pushd))
