"""GET /metrics: Prometheus text exposition that prometheus_client's parser reads, with counters
that match what the test did."""
import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from e2e_util import AsyncPublisher, AsyncSSE

N_SUBS = 3
N_EVENTS = 5


def _scrape(base_url: str) -> dict[tuple[str, tuple], float]:
    r = httpx.get(base_url + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_parse_and_match(pushd):
    async def run():
        subs = [await AsyncSSE.open(pushd.port, "/topics/m") for _ in range(N_SUBS)]
        ids = []
        async with AsyncPublisher(pushd.port) as pub:
            for i in range(N_EVENTS):
                ids.append(await pub.publish("m", f"e{i}".encode()))
        for s in subs:
            await s.wait_events(N_EVENTS, 10)
        # A reconnecting subscriber: replays the 4 events after the first id.
        late = await AsyncSSE.open(pushd.port, "/topics/m", headers={"Last-Event-ID": ids[0]})
        await late.wait_events(N_EVENTS - 1, 10)
        return subs + [late]

    subs = asyncio.run(run())
    end = time.monotonic() + 3
    while True:  # each loop publishes its counters and gauges on its own tick (100 ms)
        m = _scrape(pushd.base_url)
        settled = (m.get(("pushd_events_delivered_total", ())) == N_SUBS * N_EVENTS
                   and m.get(("pushd_subscribers", ())) == N_SUBS + 1)
        if settled or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert m[("pushd_events_published_total", ())] == N_EVENTS
    assert m[("pushd_events_delivered_total", ())] == N_SUBS * N_EVENTS
    assert m[("pushd_replay_events_total", ())] == N_EVENTS - 1
    assert m[("pushd_replay_gaps_total", ())] == 0
    assert m[("pushd_connections", (("transport", "sse"),))] == N_SUBS + 1
    assert m[("pushd_connections", (("transport", "websocket"),))] == 0
    assert m[("pushd_subscribers", ())] == N_SUBS + 1
    assert m[("pushd_events_dropped_total", (("reason", "slow_subscriber"),))] == 0
    assert m[("pushd_bytes_received_total", ())] > 0
    assert m[("pushd_bytes_sent_total", ())] > 0
    assert m[("pushd_draining", ())] == 0
    assert any(k[0] == "pushd_loop_lag_seconds" for k in m)
    # Counters only grow: a second scrape after another publish.
    httpx.post(pushd.base_url + "/topics/m", content=b"one more", timeout=5)
    time.sleep(0.3)
    m2 = _scrape(pushd.base_url)
    assert m2[("pushd_events_published_total", ())] == N_EVENTS + 1
    assert m2[("pushd_requests_total", ())] > m[("pushd_requests_total", ())]
