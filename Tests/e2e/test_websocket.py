"""WebSocket subscribers on the shared fan-out (API.md "Subscribe", issue 4).

Every test runs on io_uring, epoll and 2 workers (conftest). Clients are Python `websockets`.
"""
import asyncio
import json
import time

import httpx
import pytest
import websockets

from e2e_util import AsyncPublisher, AsyncSSE, id_key, wait_progress

N_SUBS = 200
N_EVENTS = 2000


def ws_url(pushd, path: str) -> str:
    return f"ws://127.0.0.1:{pushd.port}{path}"


class WSSub:
    """A subscriber that collects envelopes in the background."""

    def __init__(self, conn):
        self.conn = conn
        self.events: list[dict] = []
        self.other: list[dict] = []
        self.bytes_in = 0
        self.eof = False
        self.task = asyncio.ensure_future(self._run())

    @classmethod
    async def open(cls, url: str, compression="deflate"):
        conn = await websockets.connect(url, compression=compression, max_size=None, ping_interval=None,
                                        max_queue=None)
        return cls(conn)

    async def _run(self):
        try:
            async for msg in self.conn:
                self.bytes_in += len(msg)
                doc = json.loads(msg)
                (self.other if "op" in doc else self.events).append(doc)
        except websockets.ConnectionClosed:
            pass
        self.eof = True

    async def close(self):
        await self.conn.close()
        self.task.cancel()


async def _fanout(pushd):
    topic = "ws/fanout"
    # Half negotiate permessage-deflate, half not: two logs per loop, each frame built once.
    subs = await asyncio.wait_for(asyncio.gather(*[
        WSSub.open(ws_url(pushd, f"/topics/{topic}"), compression="deflate" if i % 2 else None)
        for i in range(N_SUBS)]), 60)
    try:
        published = []
        async def publisher(k):
            async with AsyncPublisher(pushd.port) as p:
                for i in range(k, N_EVENTS, 4):
                    data = f"ws event {i:05d}"
                    published.append((await p.publish(topic, data.encode()), data))
        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*[publisher(k) for k in range(4)]), 120)
        want = [eid for eid, _ in sorted(published, key=lambda x: id_key(x[0]))]
        await wait_progress(subs, lambda s: len(s.events) >= N_EVENTS, 120, stall=10)
        await asyncio.sleep(0.2)
        print(f"[{pushd.backend}] {N_SUBS} ws subscribers x {N_EVENTS} events in {time.monotonic() - t0:.2f}s")
        data_by_id = dict(published)
        for i, s in enumerate(subs):
            ids = [e["id"] for e in s.events]
            assert ids == want, f"subscriber {i}: got {len(ids)} events, first difference at " \
                f"{next((k for k, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))}"
            assert all(e["data"] == data_by_id[e["id"]] and e["topic"] == topic for e in s.events)
    finally:
        await asyncio.gather(*[s.close() for s in subs], return_exceptions=True)


@pytest.mark.timeout(300)
def test_ws_200_subscribers_2000_events_in_order(pushd):
    asyncio.run(_fanout(pushd))


async def _sse_and_ws_same_ids(pushd):
    topic = "mixed"
    sse = await AsyncSSE.open(pushd.port, f"/topics/{topic}")
    ws = await WSSub.open(ws_url(pushd, f"/topics/{topic}"))
    raw = await websockets.connect(ws_url(pushd, f"/topics/{topic}?format=raw"), ping_interval=None)
    got_raw = []
    async def read_raw():
        async for m in raw:
            got_raw.append(m)
    raw_task = asyncio.ensure_future(read_raw())
    try:
        async with AsyncPublisher(pushd.port) as p:
            ids = [await p.publish(topic, f"line {i}\nsecond \"q\" é".encode(), event="tick") for i in range(300)]
        await wait_progress([sse, ws], lambda s: len(s.events) >= 300, 30)
        await asyncio.sleep(0.2)
        assert [e.id for e in sse.events] == ids
        assert [e["id"] for e in ws.events] == ids
        assert all(e["event"] == "tick" for e in ws.events)
        assert [e.data for e in sse.events] == [e["data"] for e in ws.events]
        assert got_raw == [f"line {i}\nsecond \"q\" é" for i in range(300)]
    finally:
        await sse.close()
        await ws.close()
        await raw.close()
        raw_task.cancel()


def test_sse_and_ws_get_identical_id_sequences(pushd):
    asyncio.run(_sse_and_ws_same_ids(pushd))


async def _reconnect(pushd):
    topic = "resume"
    async with AsyncPublisher(pushd.port) as p:
        ids = [await p.publish(topic, f"e{i}".encode()) for i in range(10)]
        # query cursor
        ws = await WSSub.open(ws_url(pushd, f"/topics/{topic}?last_event_id={ids[3]}"))
        await asyncio.sleep(0.3)
        more = [await p.publish(topic, f"f{i}".encode()) for i in range(3)]
        await wait_progress([ws], lambda s: len(s.events) >= 9, 10)
        assert [e["id"] for e in ws.events] == ids[4:] + more
        assert ws.other == []
        await ws.close()
        # cursor from before this process: a gap signal first, then what is retained
        ws = await WSSub.open(ws_url(pushd, f"/topics/{topic}?last_event_id=1-0"))
        await wait_progress([ws], lambda s: len(s.events) >= 13, 10)
        assert ws.other and ws.other[0]["op"] == "gap" and ws.other[0]["last_event_id"] == "1-0"
        assert [e["id"] for e in ws.events] == ids + more
        await ws.close()
        # the subscribe command with last_event_id
        ws = await WSSub.open(ws_url(pushd, "/subscribe"))
        await ws.conn.send(json.dumps({"op": "subscribe", "topic": topic, "last_event_id": ids[7], "ref": "s"}))
        await wait_progress([ws], lambda s: len(s.events) >= 5, 10)
        assert ws.other == [{"op": "ack", "ref": "s"}]
        assert [e["id"] for e in ws.events] == ids[8:] + more
        await ws.close()


def test_reconnect_with_last_event_id_replays(pushd):
    asyncio.run(_reconnect(pushd))


async def _publish_refused(pushd):
    topic = "guarded"
    ws = await WSSub.open(ws_url(pushd, f"/topics/{topic}"))
    sse = await AsyncSSE.open(pushd.port, f"/topics/{topic}")
    await ws.conn.send(json.dumps({"op": "publish", "topic": topic, "data": "sneaky", "ref": "p1"}))
    await asyncio.sleep(0.5)
    assert len(ws.other) == 1 and ws.other[0]["op"] == "error", ws.other
    assert ws.other[0]["code"] == "forbidden" and ws.other[0]["ref"] == "p1"
    assert ws.events == [] and sse.events == []
    # nothing reached the replay ring either
    async with httpx.AsyncClient() as c:
        r = await c.post(pushd.url(f"/topics/{topic}"), content=b"legit")
        first = r.json()["id"]
    late = await WSSub.open(ws_url(pushd, f"/topics/{topic}?last_event_id={pushd_boot_cursor()}"))
    await wait_progress([late], lambda s: len(s.events) >= 1, 5)
    await asyncio.sleep(0.2)
    assert [e["id"] for e in late.events] == [first]
    await late.close()
    await ws.close()
    await sse.close()


def pushd_boot_cursor() -> str:
    # Older than anything this process assigned: a gap signal, then everything retained.
    return "1-0"


def test_publish_command_without_rights_is_refused(pushd):
    asyncio.run(_publish_refused(pushd))


async def _commands_move_logs(pushd):
    """Subscribe/unsubscribe while events flow: no gap, no duplicate on kept topics."""
    ws = await WSSub.open(ws_url(pushd, "/topics/a"))
    stop = False
    published = {"a": [], "b": []}
    async def pump(topic):
        async with AsyncPublisher(pushd.port) as p:
            while not stop:
                published[topic].append(await p.publish(topic, b"x"))
    pumps = [asyncio.ensure_future(pump("a")), asyncio.ensure_future(pump("b"))]
    await asyncio.sleep(0.2)
    for k in range(6):
        await ws.conn.send(json.dumps({"op": "subscribe", "topic": "b", "ref": f"s{k}"}))
        await asyncio.sleep(0.1)
        await ws.conn.send(json.dumps({"op": "unsubscribe", "topic": "b", "ref": f"u{k}"}))
        await asyncio.sleep(0.1)
    stop = True
    await asyncio.gather(*pumps)
    await asyncio.sleep(0.5)
    got_a = [e["id"] for e in ws.events if e["topic"] == "a"]
    assert got_a == published["a"], (len(got_a), len(published["a"]))
    got_b = [e["id"] for e in ws.events if e["topic"] == "b"]
    assert len(got_b) == len(set(got_b)) and set(got_b) <= set(published["b"])
    all_ids = [e["id"] for e in ws.events]
    assert all_ids == sorted(all_ids, key=id_key)
    assert [o["op"] for o in ws.other] == ["ack"] * 12
    await ws.close()


def test_subscribe_unsubscribe_commands_keep_order_without_gap(pushd):
    asyncio.run(_commands_move_logs(pushd))


def test_command_ref_keeps_its_json_type_on_ack_and_error(pushd):
    """A `ref` may be a JSON string or integer (Centrifugo-style clients send integer ids); the
    `ack` or `error` echoes it with the same JSON type. An optional field given as `null` is
    absent, and a command refused for a field problem still carries its ref (API.md, Commands)."""
    async def run():
        async with websockets.connect(ws_url(pushd, "/subscribe"), ping_interval=None) as ws:
            async def reply(command: str):
                await ws.send(command)
                return json.loads(await asyncio.wait_for(ws.recv(), 5))

            ack = await reply('{"op":"subscribe","topic":"refs","last_event_id":null,"ref":1}')
            assert ack == {"op": "ack", "ref": 1} and type(ack["ref"]) is int
            ack = await reply('{"op":"unsubscribe","topic":"refs","ref":"1"}')
            assert ack == {"op": "ack", "ref": "1"}
            big = 2**53 - 1
            ack = await reply('{"op":"subscribe","topic":"refs","ref":%d}' % big)
            assert ack == {"op": "ack", "ref": big} and type(ack["ref"]) is int
            # Refused by the server (bad topic), by the rights check, and for a field's type.
            err = await reply('{"op":"subscribe","topic":"a//b","ref":2}')
            assert err["op"] == "error" and err["code"] == "bad_topic" and err["ref"] == 2 and type(err["ref"]) is int
            err = await reply('{"op":"publish","topic":"refs","data":"x","ref":-3}')
            assert err["code"] == "forbidden" and err["ref"] == -3
            err = await reply('{"op":"subscribe","topic":5,"ref":4}')
            assert err["code"] == "invalid_command" and err["ref"] == 4, err
            err = await reply('{"op":"unsubscribe","topic":null,"ref":5}')
            assert err["code"] == "invalid_command" and err["ref"] == 5, err
            # A ref that is not a string nor a safe integer cannot be echoed.
            err = await reply('{"op":"subscribe","topic":"refs","ref":1.5}')
            assert err["code"] == "invalid_command" and "ref" not in err, err
            # Still one connection, still answering.
            assert await reply('{"op":"unsubscribe","topic":"refs","ref":6}') == {"op": "ack", "ref": 6}
    asyncio.run(run())


@pytest.mark.pushd(env={"PUSHD_WEBSOCKET_ALLOW_PUBLISH": "true"})
def test_publish_command_with_rights(pushd):
    async def run():
        ws = await WSSub.open(ws_url(pushd, "/topics/pub"))
        await ws.conn.send(json.dumps({"op": "publish", "topic": "pub", "event": "e", "data": "hi", "ref": "1"}))
        await wait_progress([ws], lambda s: len(s.events) >= 1 and len(s.other) >= 1, 5)
        assert ws.other[0]["op"] == "ack" and ws.other[0]["ref"] == "1"
        assert ws.events[0]["id"] == ws.other[0]["id"] and ws.events[0]["data"] == "hi"
        await ws.close()
    asyncio.run(run())


@pytest.mark.pushd(env={"PUSHD_SUBSCRIBER_QUEUE_EVENTS": "50", "PUSHD_SUBSCRIBER_QUEUE_BYTES": "64KiB"})
def test_slow_ws_subscriber_gets_close_1008(pushd):
    """A subscriber that reads too slowly is sent Close 1008 with a reason, then cut."""
    import socket
    import threading
    from ws_util import RawWS
    ws = RawWS(pushd.port, "/topics/slow")
    result = {}

    def reader():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            f = ws.read_frame(timeout=5)
            if f is None:
                result["close"] = "eof"
                return
            if f[0] == 0x8:
                result["close"] = int.from_bytes(f[1][:2], "big")
                result["reason"] = f[1][2:].decode()
                return

    # One burst of pipelined 8 KiB publishes (16 MB): the subscriber falls behind its 64 KiB queue
    # limit however fast it reads, yet drains the kernel's buffers well within the 2 s the Close
    # frame is given.
    from e2e_util import request_bytes
    pub = socket.create_connection(("127.0.0.1", pushd.port))
    burst = b"".join(request_bytes("POST", "/topics/slow", b"y" * 8192) for _ in range(2000))
    def drain_responses():
        try:
            while pub.recv(65536):
                pass
        except OSError:
            pass
    drain = threading.Thread(target=drain_responses, daemon=True)
    drain.start()
    pub.sendall(burst)
    t = threading.Thread(target=reader)
    t.start()
    t.join(35)
    pub.close()
    assert result.get("close") == 1008, result
    assert "slow" in result["reason"]
    assert ws.eof_after()


def test_sigterm_drain_sends_close_1001(pushd):
    import signal
    from ws_util import RawWS
    ws = RawWS(pushd.port, "/topics/drain")
    assert ws.status == 101
    pushd.stopped_by_test = True
    pushd.proc.send_signal(signal.SIGTERM)
    assert ws.read_close(timeout=5) == 1001
    assert ws.eof_after()
    assert pushd.proc.wait(10) == 0
