"""Replay and the delivery contract (issue #3): Last-Event-ID / ?last_event_id= resumption, the
`pushd.gap` signal for every cursor edge case, multi-topic merged replay, the replay→live seam
under a running publisher, and a restart (pre-restart cursor → gap first, then live).

Every "what arrived before X" question is answered with a marker event published after the
subscription is open (subscribe_until_marker), so nothing depends on sleeping.
"""
import asyncio
import random
import time

import pytest

from checks import diff_streams
from e2e_util import (GAP_EVENT, AsyncPublisher, AsyncSSE, SSEEvent, assert_strictly_increasing,
                      gap_info, id_key, publish_sync, subscribe_until_marker)

T = "replay/t"


def publish_n(pushd, topic: str, n: int, prefix: str = "e") -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        data = f"{prefix}{i}"
        out.append((publish_sync(pushd.port, topic, data), data))
    return out


def pairs(evs: list[SSEEvent]) -> list[tuple[str, str]]:
    return [(e.id, e.data) for e in evs]


def split_gap(evs: list[SSEEvent]) -> tuple[list[dict], list[SSEEvent]]:
    """(gap signals, other events); asserts any gap signal comes before every other event."""
    gaps = [k for k, e in enumerate(evs) if e.event == GAP_EVENT]
    assert gaps == list(range(len(gaps))), (
        f"gap signal not first: positions {gaps} in {[(e.event, e.id) for e in evs[:6]]}")
    assert len(gaps) <= 1, f"{len(gaps)} gap signals on one connection"
    return [gap_info(evs[k]) for k in gaps], [e for e in evs if e.event != GAP_EVENT]


def resume(pushd, path: str, cursor: str | None, via: str = "header",
           marker_topic: str = T) -> list[SSEEvent]:
    headers = None
    if cursor is not None:
        if via == "header":
            headers = {"Last-Event-ID": cursor}
        else:
            path += ("&" if "?" in path else "?") + "last_event_id=" + cursor
    return asyncio.run(subscribe_until_marker(pushd.port, path, marker_topic, headers=headers))


# ---------------------------------------------------------------------------------------------
# Baseline: a valid retained cursor replays exactly the rest, via header and via query


@pytest.mark.parametrize("via", ["header", "query"])
def test_valid_cursor_replays_everything_newer(pushd, via):
    pub = publish_n(pushd, T, 10)
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", pub[3][0], via))
    assert gaps == [], f"unexpected gap for a retained cursor: {gaps}"
    assert pairs(evs) == pub[4:], diff_streams(pairs(evs), pub[4:])


def test_no_cursor_no_replay(pushd):
    publish_n(pushd, T, 5)
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", None))
    assert gaps == [] and evs == [], f"no cursor must mean live only; got {gaps} {pairs(evs)}"


# ---------------------------------------------------------------------------------------------
# Cursor edge cases (one test each)


def test_cursor_empty_header_is_no_cursor(pushd):
    """`Last-Event-ID:` with an empty value = no cursor (WHATWG EventSource only sends it when
    non-empty): no gap, no replay."""
    publish_n(pushd, T, 5)

    async def run():
        # raw bytes: many clients drop empty headers, this must reach the server as sent
        sse = await AsyncSSE.open(pushd.port, f"/topics/{T}", headers={"Last-Event-ID": ""})
        try:
            mid = await asyncio.get_running_loop().run_in_executor(
                None, lambda: publish_sync(pushd.port, T, "marker"))
            await sse.wait_for(lambda s: any(e.id == mid for e in s.events), 10, "marker")
            return sse.events
        finally:
            await sse.close()

    evs = asyncio.run(run())
    assert [(e.event, e.data) for e in evs] == [(None, "marker")], (
        f"empty Last-Event-ID must be treated as no cursor; got {[(e.event, e.id, e.data) for e in evs]}")


@pytest.mark.parametrize("cursor", ["garbage", "12345", "1-2-3", "-1", "1.5-2", "abc-1", "0x10-1",
                                    "99999999999999999999999-0"])
def test_cursor_malformed_gap_and_no_replay(pushd, cursor):
    pub = publish_n(pushd, T, 5)
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", cursor))
    assert len(gaps) == 1, f"no gap signal for malformed cursor {cursor!r}; got {pairs(evs)}"
    assert gaps[0]["last_event_id"] == cursor, gaps[0]
    assert gaps[0]["oldest_retained"] == pub[0][0], (gaps[0], pub[0])
    assert evs == [], f"a malformed cursor must replay nothing; got {pairs(evs)[:5]}"


def test_cursor_malformed_via_query(pushd):
    publish_n(pushd, T, 3)
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", "nonsense", via="query"))
    assert len(gaps) == 1 and gaps[0]["last_event_id"] == "nonsense", gaps
    assert evs == []


def test_cursor_future_id_gap(pushd):
    pub = publish_n(pushd, T, 5)
    ms, _ = id_key(pub[-1][0])
    future = f"{ms + 3_600_000}-0"
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", future))
    assert len(gaps) == 1, f"no gap for a future id; got {pairs(evs)}"
    assert gaps[0] == {"last_event_id": future, "oldest_retained": pub[0][0]}, gaps[0]
    assert evs == [], f"nothing is newer than a future id; got {pairs(evs)}"


def test_cursor_future_seq_same_ms_gap(pushd):
    """A future id in the same millisecond as the last one assigned (seq beyond the last)."""
    pub = publish_n(pushd, T, 3)
    ms, seq = id_key(pub[-1][0])
    future = f"{ms}-{seq + 1000}"
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", future))
    assert len(gaps) == 1 and gaps[0]["last_event_id"] == future, (gaps, pairs(evs))
    assert evs == []


@pytest.mark.pushd(env={"PUSHD_REPLAY_EVENTS": "5"})
def test_cursor_evicted_id_gap_then_retained(pushd):
    pub = publish_n(pushd, T, 10)  # ring keeps pub[5:]
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", pub[1][0]))
    assert len(gaps) == 1, f"no gap for an evicted cursor; got {pairs(evs)}"
    assert gaps[0] == {"last_event_id": pub[1][0], "oldest_retained": pub[5][0]}, gaps[0]
    assert pairs(evs) == pub[5:], diff_streams(pairs(evs), pub[5:])


@pytest.mark.pushd(env={"PUSHD_REPLAY_EVENTS": "5"})
def test_cursor_exactly_oldest_retained_no_gap(pushd):
    pub = publish_n(pushd, T, 10)
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", pub[5][0]))
    assert gaps == [], f"gap for a cursor equal to the oldest retained id: {gaps}"
    assert pairs(evs) == pub[6:], diff_streams(pairs(evs), pub[6:])


@pytest.mark.pushd(env={"PUSHD_REPLAY_EVENTS": "5"})
def test_cursor_one_before_oldest_retained_no_gap(pushd):
    """The cursor is the id just before the oldest retained one (that event itself was evicted).
    The client already has it and nothing after it was evicted, so it missed nothing: no gap,
    then the whole retained ring."""
    pub = publish_n(pushd, T, 10)
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", pub[4][0]))
    assert gaps == [], f"gap for the id just before the oldest retained: {gaps}"
    assert pairs(evs) == pub[5:], diff_streams(pairs(evs), pub[5:])


@pytest.mark.pushd(env={"PUSHD_REPLAY_EVENTS": "5"})
def test_cursor_two_before_oldest_retained_gap(pushd):
    """One step further back: the event right after the cursor was evicted, so this is a gap."""
    pub = publish_n(pushd, T, 10)
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", pub[3][0]))
    assert len(gaps) == 1, f"no gap although {pub[4][0]} was evicted; got {pairs(evs)}"
    assert gaps[0] == {"last_event_id": pub[3][0], "oldest_retained": pub[5][0]}, gaps[0]
    assert pairs(evs) == pub[5:], diff_streams(pairs(evs), pub[5:])


def test_cursor_of_another_topic_no_gap(pushd):
    a = publish_n(pushd, T, 3, "a")
    other = publish_sync(pushd.port, "replay/other", "o")
    b = publish_n(pushd, T, 3, "b")
    gaps, evs = split_gap(resume(pushd, f"/topics/{T}", other))
    assert gaps == [], f"gap for a valid in-run id of another topic: {gaps}"
    assert pairs(evs) == b, diff_streams(pairs(evs), b)
    assert a  # the events before the foreign cursor are not replayed (checked by equality above)


def test_cursor_from_never_used_topic_in_run_no_gap(pushd):
    """A topic that never had events, cursor = a valid id of this run: nothing to replay, no gap."""
    other = publish_sync(pushd.port, "replay/other", "o")
    gaps, evs = split_gap(resume(pushd, "/topics/replay/fresh", other, marker_topic="replay/fresh"))
    assert gaps == [] and evs == [], (gaps, pairs(evs))


# ---------------------------------------------------------------------------------------------
# Multi-topic


def test_multi_topic_replay_merged_in_id_order(pushd):
    rng = random.Random(7)
    topics = ["mt/a", "mt/b", "mt/c"]
    pub = []
    for i in range(60):
        t = rng.choice(topics)
        pub.append((publish_sync(pushd.port, t, f"{t}#{i}"), f"{t}#{i}"))
    publish_sync(pushd.port, "mt/unrelated", "x")
    cursor = pub[9][0]
    path = "/subscribe?" + "&".join(f"topic={t}" for t in topics)
    gaps, evs = split_gap(resume(pushd, path, cursor, marker_topic="mt/a"))
    assert gaps == []
    assert pairs(evs) == pub[10:], diff_streams(pairs(evs), pub[10:])
    assert_strictly_increasing([e.id for e in evs], "merged replay ids")


@pytest.mark.pushd(env={"PUSHD_REPLAY_EVENTS": "4"})
def test_multi_topic_one_ring_evicted_gap_then_merged(pushd):
    """Topic a overflows its ring past the cursor, topic b does not: gap first (the cursor is older
    than an event evicted from one of the rings), then the merged retained events newer than it."""
    pub = []
    b_early = publish_sync(pushd.port, "mt/b", "b0")
    pub.append((b_early, "b0"))
    cursor = b_early
    for i in range(8):
        pub.append((publish_sync(pushd.port, "mt/a", f"a{i}"), f"a{i}"))
    pub.append((publish_sync(pushd.port, "mt/b", "b1"), "b1"))
    # ring a keeps a4..a7; ring b keeps b0, b1
    want = [p for p in pub if p[1] in ("a4", "a5", "a6", "a7", "b1")]
    gaps, evs = split_gap(resume(pushd, "/subscribe?topic=mt/a&topic=mt/b", cursor,
                                 marker_topic="mt/a"))
    assert len(gaps) == 1, f"no gap although mt/a evicted events newer than the cursor: {pairs(evs)}"
    assert gaps[0]["last_event_id"] == cursor
    assert gaps[0]["oldest_retained"] == b_early, (
        f"oldest_retained should be the oldest id retained on the subscribed topics: {gaps[0]}")
    assert pairs(evs) == want, diff_streams(pairs(evs), want)


# ---------------------------------------------------------------------------------------------
# The seam: replay then live, while a publisher keeps publishing


@pytest.mark.parametrize("via", ["header", "query"])
def test_replay_then_live_seam_under_load(pushd, via):
    n_events, n_subs = 3000, 24
    topic = "seam/t"

    async def run():
        published: list[tuple[str, str]] = []
        done = asyncio.Event()

        async def publisher():
            async with AsyncPublisher(pushd.port) as p:
                for i in range(n_events):
                    data = f"s{i}"
                    published.append((await p.publish(topic, data.encode()), data))
            done.set()

        subs: list[tuple[int, AsyncSSE]] = []

        async def joiner():
            rng = random.Random(11)
            while len(subs) < n_subs and not done.is_set():
                await asyncio.sleep(rng.uniform(0.005, 0.05))
                if len(published) < 2:
                    continue
                k = rng.randrange(max(0, len(published) - 500), len(published))
                cursor = published[k][0]
                path = f"/topics/{topic}"
                hdrs = None
                if via == "header":
                    hdrs = {"Last-Event-ID": cursor}
                else:
                    path += f"?last_event_id={cursor}"
                subs.append((k, await AsyncSSE.open(pushd.port, path, headers=hdrs)))

        t0 = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(publisher(), joiner()), 90)
            assert len(subs) >= n_subs // 2, f"only {len(subs)} subscribers joined"
            last = published[-1][0]
            for _, s in subs:
                try:
                    await s.wait_for(lambda x: bool(x.events) and x.events[-1].id is not None
                                     and id_key(x.events[-1].id) >= id_key(last),
                                     30, "the last published event")
                except AssertionError:
                    pass  # compared below
            bad = {}
            for k, s in subs:
                got = [(e.id, e.data) for e in s.events]
                want = published[k + 1:]
                if any(e.event == GAP_EVENT for e in s.events) or got != want:
                    bad[k] = diff_streams(got, want) or "gap signal"
            print(f"[{pushd.backend}] seam: {len(subs)} subscribers joined mid-publish, "
                  f"{n_events} events in {time.monotonic() - t0:.1f}s")
            assert not bad, (f"{len(bad)}/{len(subs)} subscribers saw a seam gap/duplicate; "
                             + "; ".join(f"cursor#{k}: {v}" for k, v in list(bad.items())[:3]))
        finally:
            await asyncio.gather(*[s.close() for _, s in subs], return_exceptions=True)

    asyncio.run(run())


# ---------------------------------------------------------------------------------------------
# Restart


def test_restart_pre_restart_cursor_gap_then_live(pushd_factory):
    first = pushd_factory()
    port = first.port
    pre = publish_n(first, T, 5)
    first.stop()
    assert first.exit_code == 0, f"pushd exit {first.exit_code} on SIGTERM"
    second = pushd_factory(port=port)
    assert second.port == port

    async def run():
        sse = await AsyncSSE.open(port, f"/topics/{T}", headers={"Last-Event-ID": pre[-1][0]})
        try:
            live = []
            for i in range(3):
                live.append((await asyncio.get_running_loop().run_in_executor(
                    None, lambda i=i: publish_sync(port, T, f"live{i}")), f"live{i}"))
            await sse.wait_for(lambda s: sum(e.event != GAP_EVENT for e in s.events) >= 3, 10,
                               "3 live events")
            return sse.events, live
        finally:
            await sse.close()

    evs, live = asyncio.run(run())
    gaps, rest = split_gap(evs)
    assert len(gaps) == 1, (f"no gap signal for a pre-restart cursor: "
                            f"{[(e.event, e.id, e.data) for e in evs]}")
    assert gaps[0] == {"last_event_id": pre[-1][0], "oldest_retained": ""}, gaps[0]
    assert pairs(rest) == live, diff_streams(pairs(rest), live)
    assert id_key(live[0][0]) > id_key(pre[-1][0]), (
        f"ids must keep increasing across a restart: {pre[-1][0]} then {live[0][0]}")


def test_restart_pre_restart_cursor_with_post_restart_events(pushd_factory):
    """After the restart some events were already published: pre-restart cursor → gap first
    (oldest_retained = the first post-restart event), then those events, then live."""
    first = pushd_factory()
    port = first.port
    pre = publish_n(first, T, 3)
    first.stop()
    second = pushd_factory(port=port)
    post = publish_n(second, T, 3, "post")
    gaps, evs = split_gap(resume(second, f"/topics/{T}", pre[-1][0]))
    assert len(gaps) == 1, f"no gap for a pre-restart cursor: {pairs(evs)}"
    assert gaps[0] == {"last_event_id": pre[-1][0], "oldest_retained": post[0][0]}, gaps[0]
    assert pairs(evs) == post, diff_streams(pairs(evs), post)


def test_cursor_empty_query_is_no_cursor(pushd):
    publish_n(pushd, T, 3)
    evs = asyncio.run(subscribe_until_marker(pushd.port, f"/topics/{T}?last_event_id=", T))
    assert evs == [], f"empty ?last_event_id= must be treated as no cursor; got {pairs(evs)}"
