"""Slow subscribers: one stuck SSE client (tiny SO_RCVBUF, never reads) must be disconnected
(policy `disconnect`, the default) without delaying 5 healthy subscribers or growing memory.
"""
import asyncio
import time

import pytest

from checks import assert_streams
from e2e_util import AsyncPublisher, AsyncSSE, id_key, wait_progress

N_EVENTS = 20_000
EVENT_BYTES = 1024
N_HEALTHY = 5
N_PUBLISHERS = 4
# Publishers stay at most WINDOW events ahead of the slowest *healthy* reader, so that Python's
# own reading speed can never make a healthy subscriber look slow to the server (WINDOW events
# are far below queue_bytes); the stuck subscriber is not part of that window.
WINDOW = 32
RSS_GROWTH_LIMIT_KB = 200 * 1024
TOPIC = "slow"


@pytest.mark.pushd(env={
    "PUSHD_SUBSCRIBER_QUEUE_EVENTS": "256",
    "PUSHD_SUBSCRIBER_QUEUE_BYTES": "65536",
    "PUSHD_SUBSCRIBER_SLOW_POLICY": "disconnect",
})
def test_stuck_subscriber_is_disconnected_others_get_everything(pushd):
    async def run():
        stuck = await AsyncSSE.open(pushd.port, f"/topics/{TOPIC}", rcvbuf=4096)
        healthy = await asyncio.gather(
            *[AsyncSSE.open(pushd.port, f"/topics/{TOPIC}") for _ in range(N_HEALTHY)])
        rss0 = pushd.rss_kb()
        published: list = []
        issued = 0
        progress = asyncio.Event()

        def lag() -> int:
            return issued - min(len(s.events) for s in healthy)

        async def publisher(jobs):
            nonlocal issued
            async with AsyncPublisher(pushd.port) as p:
                for i in jobs:
                    while lag() >= WINDOW:
                        if any(s.eof for s in healthy):
                            raise AssertionError("a healthy subscriber was disconnected")
                        await asyncio.sleep(0.001)
                    issued += 1
                    data = f"{i:06d} ".encode() + b"x" * (EVENT_BYTES - 7)
                    published.append((await p.publish(TOPIC, data), data.decode()))
            progress.set()

        try:
            t0 = time.monotonic()
            share = [list(range(k, N_EVENTS, N_PUBLISHERS)) for k in range(N_PUBLISHERS)]
            await asyncio.wait_for(asyncio.gather(*[publisher(j) for j in share]), 150)
            t_pub = time.monotonic() - t0
            await wait_progress(healthy, lambda s: len(s.events) >= N_EVENTS, 60, stall=5)
            t_all = time.monotonic() - t0
            rss1 = pushd.rss_kb()
            hwm = pushd.proc_status("VmHWM")
            want = sorted(published, key=lambda x: id_key(x[0]))
            assert_streams({f"healthy{k}": [(e.id, e.data) for e in s.events]
                            for k, s in enumerate(healthy)}, want)

            # Drain the stuck subscriber: it must end (EOF / reset) well before 20,000 events.
            end = time.monotonic() + 30
            while not stuck.eof and time.monotonic() < end:
                await stuck.read_some(max(0.01, end - time.monotonic()))
            n_stuck = len(stuck.events)
            print(f"[{pushd.backend}] published {N_EVENTS} x {EVENT_BYTES} B in {t_pub:.2f}s, "
                  f"healthy complete after {t_all:.2f}s; stuck subscriber got {n_stuck} events "
                  f"then {'reset' if stuck.reset else 'EOF' if stuck.eof else 'NOTHING'}; "
                  f"RSS before {rss0} kB, after {rss1} kB, peak {hwm} kB")
            assert stuck.eof, (f"stuck subscriber not disconnected: {n_stuck} events read and "
                               f"the stream is still open")
            assert n_stuck < N_EVENTS // 2, f"stuck subscriber got {n_stuck} of {N_EVENTS} events"
            # what it did get is an in-order prefix (disconnect policy: no silent drops)
            got = [(e.id, e.data) for e in stuck.events]
            assert got == want[:n_stuck], "stuck subscriber's events are not a prefix of the stream"
            assert rss1 - rss0 < RSS_GROWTH_LIMIT_KB, f"RSS grew {rss1 - rss0} kB"
            assert pushd.alive()
        finally:
            await asyncio.gather(*[s.close() for s in healthy + [stuck]], return_exceptions=True)

    asyncio.run(run())


def _sse_connections(pushd) -> int:
    import re
    import httpx
    text = httpx.get(pushd.url("/metrics"), timeout=5).text
    return int(float(re.search(r'^pushd_connections\{transport="sse"\} (\S+)$', text, re.M).group(1)))


@pytest.mark.pushd(env={
    "PUSHD_SUBSCRIBER_QUEUE_EVENTS": "64",
    "PUSHD_SUBSCRIBER_QUEUE_BYTES": "65536",
    "PUSHD_SUBSCRIBER_DISCONNECT_GRACE": "1s",
})
def test_disconnect_grace_bounds_how_long_a_stuck_subscriber_is_kept(pushd):
    """`subscriber.disconnect_grace`: a subscriber detached by the disconnect policy that does not
    take the events already handed to it is cut after the grace (1 s here, 30 s by default)."""
    async def run():
        stuck = await AsyncSSE.open(pushd.port, f"/topics/{TOPIC}", rcvbuf=4096)
        import httpx
        async with httpx.AsyncClient(timeout=10) as c:
            for b in range(100):  # 10 MiB in batches: far past the queue and the kernel's buffers
                events = [{"topic": TOPIC, "data": f"{b:03d}-{i:03d} " + "x" * 1014} for i in range(100)]
                r = await c.post(pushd.url("/publish"), json={"events": events})
                assert r.status_code == 200, r.text
        t0 = time.monotonic()
        while _sse_connections(pushd) > 0:
            assert time.monotonic() - t0 < 6, "the stuck subscriber was kept past disconnect_grace 1s"
            await asyncio.sleep(0.1)
        print(f"[{pushd.backend}] stuck subscriber cut {time.monotonic() - t0:.1f} s after the last publish")
        await stuck.close()

    asyncio.run(run())
