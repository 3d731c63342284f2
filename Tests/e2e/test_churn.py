"""Churn (issue #3 acceptance): `--workers 2`, 5 topics, 4 publishers flat out publishing 20,000
events; 50 subscribers (1–2 topics each, some via /subscribe) disconnect and reconnect at random
moments with the last id they received. At the end every subscriber holds, for its topics, every
event exactly once in id order — or a `pushd.gap` signal exactly where it missed events (first on
the connection, naming the cursor it sent), never a silent hole.

Two ring sizes: the default 1,000 (reconnects replay: normally no gap at all) and 50 (rings are
overrun while subscribers are away: gaps must happen and must explain every hole).
The first connection of every subscriber sends, as its cursor, the id of a priming event published
on an unrelated topic before the run, so even "before my first event" is a resume, not a race.
"""
import asyncio
import random
import time

import pytest

from e2e_util import GAP_EVENT, AsyncPublisher, AsyncSSE, gap_info, id_key, publish_sync

TOPICS = [f"churn/t{i}" for i in range(5)]
N_EVENTS = 20_000
N_PUBLISHERS = 4
N_SUBS = 50


class Sub:
    def __init__(self, k: int, rng: random.Random):
        self.k = k
        self.topics = sorted(rng.sample(TOPICS, rng.choice([1, 2])))
        self.via_subscribe = len(self.topics) > 1 or k % 3 == 0
        self.path = ("/subscribe?" + "&".join(f"topic={t}" for t in self.topics)
                     if self.via_subscribe else f"/topics/{self.topics[0]}")
        self.received: list[tuple[str, str]] = []
        self.gaps: list[tuple[int, dict, str, int]] = []  # (index in received, json, cursor, connection)
        self.gap_not_first: list[str] = []
        self.conns: list[tuple[int, str]] = []  # (index in received where it starts, cursor sent)
        self.connects = self.replay_conns = self.server_closes = self.open_errors = 0
        self.rng = random.Random(1000 + k)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("ring", [1000, 50])
def test_churn_every_event_once_in_order_or_explicit_gap(pushd_factory, backend, ring):
    if backend == "workers2":
        pytest.skip("churn runs io_uring and epoll with --workers 2 already (the io_uring run is workers2)")
    pushd = pushd_factory(env={"PUSHD_REPLAY_EVENTS": str(ring)}, args=["--workers", "2"])
    prime = publish_sync(pushd.port, "churn/prime", "prime")
    rng = random.Random(20_000 + ring)
    subs = [Sub(k, rng) for k in range(N_SUBS)]

    async def run():
        published: list[tuple[str, str, str]] = []  # (id, topic, data)
        pub_done = asyncio.Event()
        first_connected = [asyncio.Event() for _ in subs]
        target: dict[str, str] = {}

        async def publisher(p: int):
            prng = random.Random(p)
            async with AsyncPublisher(pushd.port) as pc:
                for i in range(N_EVENTS // N_PUBLISHERS):
                    t = prng.choice(TOPICS)
                    data = f"{t}|p{p}|{i}"
                    published.append((await pc.publish(t, data.encode(), timeout=30), t, data))

        async def subscriber(s: Sub):
            cursor = prime
            final_deadline = None
            while True:
                if pub_done.is_set() and _reached(s, target):
                    return
                try:
                    sse = await AsyncSSE.open(pushd.port, s.path,
                                              headers={"Last-Event-ID": cursor}, timeout=15)
                    assert sse.status == 200, sse.status
                except (OSError, asyncio.TimeoutError, AssertionError):
                    s.open_errors += 1
                    await asyncio.sleep(0.05)
                    continue
                s.connects += 1
                first_connected[s.k].set()
                lifetime_end = time.monotonic() + s.rng.uniform(0.02, 0.8)
                while True:
                    await asyncio.sleep(0.02)
                    if sse.eof:
                        s.server_closes += 1
                        break
                    if pub_done.is_set():
                        if final_deadline is None:
                            final_deadline = time.monotonic() + 40
                        want = max((target[t] for t in s.topics if t in target), key=id_key,
                                   default=None)
                        evs = sse.events
                        if want is None or (evs and evs[-1].id is not None and
                                            id_key(evs[-1].id) >= id_key(want)):
                            break
                        if time.monotonic() > final_deadline:
                            break
                    elif time.monotonic() >= lifetime_end:
                        break
                await sse.close()
                evs = list(sse.events)
                n_before = len(s.received)
                s.conns.append((n_before, cursor))
                for j, e in enumerate(evs):
                    if e.event == GAP_EVENT:
                        if j != 0:
                            s.gap_not_first.append(f"gap at position {j} on connection {s.connects}")
                        s.gaps.append((len(s.received), gap_info(e), cursor, len(s.conns) - 1))
                    else:
                        s.received.append((e.id, e.data))
                if s.connects > 1 and len(s.received) > n_before and \
                        not (evs and evs[0].event == GAP_EVENT):
                    s.replay_conns += 1  # resumed with events and no gap
                if s.received:
                    cursor = s.received[-1][0]
                if not pub_done.is_set():
                    # offline for a while: long enough, at flat-out rates, to overrun a ring of 50
                    await asyncio.sleep(s.rng.uniform(0.0, 0.5))
                if pub_done.is_set() and (final_deadline is not None and
                                          (time.monotonic() > final_deadline or
                                           _reached(s, target))):
                    return

        def _reached(s: Sub, tgt) -> bool:
            want = max((tgt[t] for t in s.topics if t in tgt), key=id_key, default=None)
            return want is None or (bool(s.received) and id_key(s.received[-1][0]) >= id_key(want))

        sub_tasks = [asyncio.ensure_future(subscriber(s)) for s in subs]
        await asyncio.wait_for(asyncio.gather(*[e.wait() for e in first_connected]), 60)
        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*[publisher(p) for p in range(N_PUBLISHERS)]), 150)
        t_pub = time.monotonic() - t0
        for pid, t, _ in published:
            if t not in target or id_key(pid) > id_key(target[t]):
                target[t] = pid
        pub_done.set()
        await asyncio.wait_for(asyncio.gather(*sub_tasks), 60)
        return published, t_pub, time.monotonic() - t0

    published, t_pub, t_all = asyncio.run(run())
    assert len(published) == N_EVENTS
    by_id = sorted(published, key=lambda x: id_key(x[0]))

    problems: list[str] = []
    n_gaps = n_holes = n_false_gaps = missed = 0
    topic_of = {i: t for i, t, _ in published}
    data_of = {i: d for i, _, d in published}
    for s in subs:
        n_gaps += len(s.gaps)
        if s.gap_not_first:
            problems.append(f"sub{s.k}: {s.gap_not_first[0]}")
        # which connection delivered received[n]: conn_of[n] = index into s.conns
        conn_of, c = [], -1
        starts = [st for st, _ in s.conns]
        for n in range(len(s.received)):
            while c + 1 < len(starts) and starts[c + 1] <= n:
                c += 1
            conn_of.append(c)
        bad = None
        # 1. every event is one of its topics' events, with its data, ids strictly increasing
        #    over the whole life of the subscriber (merged order, no duplicate across reconnects)
        prev_id = prime
        for n, (eid, data) in enumerate(s.received):
            if topic_of.get(eid) not in s.topics or data_of[eid] != data:
                bad = f"received[{n}] {eid} {data!r} is not a published event of {s.topics}"
                break
            if id_key(eid) <= id_key(prev_id):
                bad = f"duplicate/out of order at received[{n}]: {eid} after {prev_id}"
                break
            prev_id = eid
        # 2. per topic: every hole sits at the first event of that topic on a connection that
        #    began with a gap signal naming the cursor the client sent
        conn_gap = {g[3]: g for g in s.gaps}
        for g in s.gaps:
            if bad is None and g[1]["last_event_id"] != g[2]:
                bad = f"gap names cursor {g[1]['last_event_id']!r}, the client sent {g[2]!r}"
        holes_in_conn: set[int] = set()
        for t in s.topics:
            if bad is not None:
                break
            tw = [i for i, tt, _ in by_id if tt == t]
            tpos = {i: k for k, i in enumerate(tw)}
            prev, seen_conns = -1, set()
            for n, (eid, _) in enumerate(s.received):
                if topic_of[eid] != t:
                    continue
                p, cn = tpos[eid], conn_of[n]
                first_in_conn = cn not in seen_conns
                seen_conns.add(cn)
                if p != prev + 1:
                    n_holes += 1
                    missed += p - prev - 1
                    g = conn_gap.get(cn)
                    if g is None or not first_in_conn:
                        bad = (f"SILENT HOLE on {t} at received[{n}]: {p - prev - 1} events missing "
                               f"before {eid} (prev on topic: {tw[prev] if prev >= 0 else prime}), "
                               f"{'no gap signal on that connection' if g is None else 'not at the start of the connection'}")
                        break
                    holes_in_conn.add(cn)
                    if len(s.topics) == 1 and g[1]["oldest_retained"] != eid:
                        bad = (f"gap says oldest_retained {g[1]['oldest_retained']}, but the first "
                               f"event after it is {eid}")
                        break
                prev = p
            if bad is None and prev != len(tw) - 1:
                bad = (f"incomplete on {t}: ends at {prev + 1}/{len(tw)} events "
                       f"(want last {tw[-1] if tw else None})")
        n_false_gaps += len(set(conn_gap) - holes_in_conn)
        if bad:
            problems.append(f"sub{s.k} {s.topics} ({s.connects} connects): {bad}")

    connects = sum(s.connects for s in subs)
    print(f"[{backend} --workers 2, ring {ring}] {N_EVENTS} events published in {t_pub:.1f}s "
          f"({N_EVENTS / t_pub:.0f}/s), all done {t_all:.1f}s; {connects} connections "
          f"({sum(s.server_closes for s in subs)} closed by the server, "
          f"{sum(s.open_errors for s in subs)} failed opens); {n_gaps} gap signals, "
          f"{n_holes} holes (all explained by gaps: {not any('SILENT' in p for p in problems)}), "
          f"{missed} events missed behind gaps, {n_false_gaps} gaps with nothing missing; "
          f"{sum(s.replay_conns for s in subs)} reconnects resumed without a gap")
    assert not problems, f"{len(problems)}/{N_SUBS} subscribers wrong: " + " | ".join(problems[:5])
    assert connects >= 3 * N_SUBS, f"too little churn: {connects} connections"
    if ring <= 50:
        assert n_gaps > 0, "ring 50 was never overrun: the gap path was not exercised"
