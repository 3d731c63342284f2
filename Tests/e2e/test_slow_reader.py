"""Slow reader (issue #3 acceptance): one raw-socket subscriber with a 4 KiB SO_RCVBUF reads about
1 KB/s while 50,000 events go to its topic (small queue limits). Three other subscribers get all
50,000 in order; pushd's RSS stays bounded (printed: before / after / peak); the slow policy fires:
  disconnect  the slow one is closed on an event boundary (no torn event), and its reconnect with
              the last id it got replays exactly what it missed (the ring retains everything here);
  drop        the slow one stays connected, receives only whole, well-formed events (a gappy but
              increasing subsequence of the stream) and still gets a live event at the end.
"""
import asyncio
import json
import time

import pytest

from checks import assert_streams, diff_streams
from e2e_util import (GAP_EVENT, AsyncPublisher, AsyncSSE, id_key, publish_sync, request_bytes,
                      sse_block_problems, wait_progress)

N_EVENTS = 50_000
N_HEALTHY = 3
N_PUBLISHERS = 4
WINDOW = 64          # publishers stay at most this far ahead of the slowest healthy reader
BATCH = 50           # events per POST /publish (when the server has batches)
PAD = 200            # event data ≈ 210 bytes, ≈ 240 on the wire: the stream is ≈ 12 MB
RSS_GROWTH_LIMIT_KB = 96 * 1024
TOPIC = "slowreader"
ENV = {"PUSHD_SUBSCRIBER_QUEUE_EVENTS": "1000", "PUSHD_SUBSCRIBER_QUEUE_BYTES": "131072",
       "PUSHD_REPLAY_EVENTS": "60000", "PUSHD_REPLAY_MAX_BYTES": "64MiB"}


def kernel_send_max() -> int:
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


@pytest.mark.timeout(150)
@pytest.mark.parametrize("policy", ["disconnect", "drop"])
def test_slow_reader_policy_others_unaffected_memory_bounded(pushd_factory, policy):
    pushd = pushd_factory(env={**ENV, "PUSHD_SUBSCRIBER_SLOW_POLICY": policy})

    async def run():
        slow = await AsyncSSE.open(pushd.port, f"/topics/{TOPIC}", rcvbuf=4096, keep_raw=True)
        healthy = await asyncio.gather(
            *[AsyncSSE.open(pushd.port, f"/topics/{TOPIC}") for _ in range(N_HEALTHY)])
        rss0 = pushd.rss_kb()
        rss_peak_sampled = rss0
        published: list[tuple[str, str]] = []
        issued = 0
        use_batch = True
        stop_slow = asyncio.Event()

        def lag() -> int:
            return issued - min(len(s.events) for s in healthy)

        async def publisher(jobs):
            # POST /publish batches of BATCH events when the server has it (fast enough to keep the
            # run short), else one POST /topics per event
            nonlocal issued, use_batch
            async with AsyncPublisher(pushd.port) as p:
                for b in range(0, len(jobs), BATCH):
                    chunk = jobs[b:b + BATCH]
                    while lag() >= WINDOW:
                        if any(s.eof for s in healthy):
                            raise AssertionError("a healthy subscriber was disconnected")
                        await asyncio.sleep(0.001)
                    issued += len(chunk)
                    datas = [f"{i:06d} " + "x" * PAD for i in chunk]
                    if use_batch:
                        body = json.dumps({"events": [{"topic": TOPIC, "data": d}
                                                      for d in datas]}).encode()
                        p.writer.write(request_bytes("POST", "/publish", body,
                                                     {"Content-Type": "application/json"}))
                        resp = await p.read_response(30)
                        if resp.status == 404 and not published:
                            use_batch = False
                        else:
                            assert resp.status == 200, (resp.status, resp.body[:200])
                            out = resp.json()["events"]
                            published.extend((o["id"], d) for o, d in zip(out, datas))
                            continue
                    for d in datas:
                        published.append((await p.publish(TOPIC, d.encode(), timeout=30), d))

        async def slow_reader():
            # ~1 KB/s: 256 bytes every 250 ms, until the publishing is over
            while not stop_slow.is_set() and not slow.eof:
                try:
                    chunk = await asyncio.wait_for(slow.reader.read(256), 0.25)
                except asyncio.TimeoutError:
                    continue
                except ConnectionResetError:
                    slow.eof = slow.reset = True
                    break
                if not chunk:
                    slow.eof = True
                    break
                slow._consume(chunk)
                await asyncio.sleep(0.25)

        async def sampler():
            nonlocal rss_peak_sampled
            while not stop_slow.is_set():
                rss_peak_sampled = max(rss_peak_sampled, pushd.rss_kb())
                await asyncio.sleep(0.2)

        slow_task = asyncio.ensure_future(slow_reader())
        samp_task = asyncio.ensure_future(sampler())
        try:
            t0 = time.monotonic()
            share = [list(range(k, N_EVENTS, N_PUBLISHERS)) for k in range(N_PUBLISHERS)]
            await asyncio.wait_for(asyncio.gather(*[publisher(j) for j in share]), 120)
            t_pub = time.monotonic() - t0
            await wait_progress(healthy, lambda s: len(s.events) >= N_EVENTS, 30, stall=5)
            stop_slow.set()
            await slow_task
            await samp_task
            rss1 = pushd.rss_kb()
            hwm = pushd.proc_status("VmHWM")
            want = sorted(published, key=lambda x: id_key(x[0]))
            assert_streams({f"healthy{k}": [(e.id, e.data) for e in s.events]
                            for k, s in enumerate(healthy)}, want)
            slow_during = len(slow.events)

            # drain the slow socket at full speed now: EOF (disconnect) or idle-but-open (drop)
            end = time.monotonic() + 20
            while not slow.eof and time.monotonic() < end:
                try:
                    chunk = await asyncio.wait_for(slow.reader.read(262144), 1.5)
                except asyncio.TimeoutError:
                    break  # nothing more for 1.5 s and not closed
                except ConnectionResetError:
                    slow.eof = slow.reset = True
                    break
                if not chunk:
                    slow.eof = True
                    break
                slow._consume(chunk)

            print(f"[{pushd.backend} {policy}] {N_EVENTS} events ({sum(len(d) for _, d in published) / 1e6:.1f} MB data) published in {t_pub:.1f}s "
                  f"({'batches' if use_batch else 'single POSTs'}); slow "
                  f"reader got {slow_during} events while publishing, {len(slow.events)} in all, "
                  f"{slow.bytes_in} bytes, then {'reset' if slow.reset else 'EOF' if slow.eof else 'still open'}; "
                  f"RSS before {rss0} kB, after {rss1} kB, sampled peak {rss_peak_sampled} kB, "
                  f"VmHWM {hwm} kB")
            assert pushd.alive()
            assert max(rss1, rss_peak_sampled) - rss0 < RSS_GROWTH_LIMIT_KB, (
                f"RSS grew {max(rss1, rss_peak_sampled) - rss0} kB")
            got = [(e.id, e.data) for e in slow.events if e.event != GAP_EVENT]
            if policy == "disconnect" or slow.eof:
                probs = sse_block_problems(bytes(slow.raw))
                assert not probs, f"slow reader got malformed / torn SSE: {probs[:3]}"
            assert not any(e.event == GAP_EVENT for e in slow.events), "gap on a live stream"
            index = {eid: n for n, (eid, _) in enumerate(want)}
            for eid, data in got:
                assert eid in index and want[index[eid]][1] == data, f"bad event {eid} {data!r}"
            pos = [index[eid] for eid, _ in got]
            assert pos == sorted(set(pos)), "slow reader's events are not increasing / duplicated"

            if policy == "disconnect":
                assert slow.eof, (f"slow subscriber not disconnected: {len(got)} events read, "
                                  f"stream still open")
                # What a disconnected reader can still get is bounded by the kernel's buffers
                # (the server's send buffer autotunes up to tcp_wmem max) plus the queue limit —
                # not by the length of the stream.
                bound = kernel_send_max() + 2 * 4096 + int(ENV["PUSHD_SUBSCRIBER_QUEUE_BYTES"]) \
                    + 256 * 1024
                assert slow.bytes_in < bound, (
                    f"slow subscriber got {slow.bytes_in} bytes ({len(got)} of {N_EVENTS} events) "
                    f"before the disconnect; kernel+queue bound {bound}")
                assert got == want[:len(got)], "disconnect policy: what arrived is not a prefix"
                # reconnect with the last id: replay exactly the rest (all retained), no gap
                cursor = got[-1][0] if got else None
                hdrs = {"Last-Event-ID": cursor} if cursor else None
                again = await AsyncSSE.open(pushd.port, f"/topics/{TOPIC}", headers=hdrs)
                try:
                    rest = want[len(got):]
                    await again.wait_for(lambda s: len(s.events) >= len(rest) + (1 if any(
                        e.event == GAP_EVENT for e in s.events) else 0), 30, "the replay")
                    assert not any(e.event == GAP_EVENT for e in again.events), "unexpected gap"
                    rep = [(e.id, e.data) for e in again.events]
                    assert rep == rest, diff_streams(rep, rest)
                finally:
                    await again.close()
            else:
                assert not slow.eof, "drop policy: the slow subscriber was disconnected"
                assert len(got) < N_EVENTS, f"drop policy never dropped ({len(got)} events)"
                mid = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: publish_sync(pushd.port, TOPIC, "after-the-storm"))
                try:
                    await slow.wait_for(lambda s: any(e.id == mid for e in s.events), 10,
                                        "a live event after the drops")
                finally:
                    raw = bytes(slow.raw)
                    probs = sse_block_problems(raw)
                    where = [raw.find(pr.split("'")[1].encode()[:40]) for pr in probs[:1]
                             if "'" in pr]
                    ctx = raw[max(0, where[0] - 200):where[0] + 300] if where and where[0] >= 0 \
                        else raw[-400:]
                    assert not probs, (f"drop policy: malformed / torn SSE on the slow stream: "
                                       f"{probs[:3]}; context {ctx!r}")
        finally:
            stop_slow.set()
            slow_task.cancel()
            samp_task.cancel()
            await asyncio.gather(*[s.close() for s in healthy + [slow]], return_exceptions=True)

    asyncio.run(run())
