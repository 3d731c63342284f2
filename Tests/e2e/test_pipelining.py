"""HTTP/1.1 pipelining: 64 publishes in one write get 64 in-order responses; read backpressure
(`limits.max_pipelined_requests`) for clients that pipeline far ahead of what they read."""
import asyncio

import httpx

from e2e_util import AsyncSSE, ID_RE, SyncConn, assert_strictly_increasing, id_key, request_bytes

N = 64


def test_64_pipelined_publishes(pushd):
    async def run():
        sub = await AsyncSSE.open(pushd.port, "/topics/pipe")
        try:
            bodies = [f"pipelined {i}".encode() for i in range(N)]
            batch = b"".join(request_bytes("POST", "/topics/pipe", b) for b in bodies)
            with SyncConn(pushd.port) as c:
                c.send(batch)  # one sendall for all 64 requests
                resps = [c.read_response() for _ in range(N)]
                # the connection stays usable afterwards
                c.send(request_bytes("GET", "/healthz"))
                assert c.read_response().status == 200
            ids = []
            for i, r in enumerate(resps):
                assert r.status == 200, (i, r.status, r.body)
                doc = r.json()
                assert doc["topic"] == "pipe", doc
                assert ID_RE.match(doc["id"]), doc
                ids.append(doc["id"])
            assert_strictly_increasing(ids, "pipelined publish ids")
            await sub.wait_events(N, 10)
            await asyncio.sleep(0.2)
            got = [(e.id, e.data) for e in sub.events]
            assert got == list(zip(ids, [b.decode() for b in bodies]))
        finally:
            await sub.close()

    asyncio.run(run())


def test_pipelined_mixed_with_chunked_and_errors(pushd):
    """Framing survives a mix: chunked body, Content-Length body, a 404 and a 400 in the middle."""
    reqs = [
        request_bytes("POST", "/topics/mix", b"first"),
        b"POST /topics/mix HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nsec\r\n3;ext=1\r\nond\r\n0\r\n\r\n",
        request_bytes("GET", "/no/such/route"),
        request_bytes("POST", "/topics/bad%20topic", b"nope"),
        request_bytes("POST", "/topics/mix", b"third"),
    ]
    async def run():
        sub = await AsyncSSE.open(pushd.port, "/topics/mix")
        try:
            with SyncConn(pushd.port) as c:
                c.send(b"".join(reqs))
                rs = [c.read_response() for _ in reqs]
            assert [r.status for r in rs] == [200, 200, 404, 400, 200], [(r.status, r.body) for r in rs]
            ids = [rs[i].json()["id"] for i in (0, 1, 4)]
            assert id_key(ids[0]) < id_key(ids[1]) < id_key(ids[2])
            await sub.wait_events(3, 10)
            await asyncio.sleep(0.2)
            assert [(e.id, e.data) for e in sub.events] == list(zip(ids, ["first", "second", "third"]))
        finally:
            await sub.close()

    asyncio.run(run())


# --- limits.max_pipelined_requests: read backpressure (docs/SECURITY.md rows 50-52) -----------

import fcntl
import socket
import struct
import termios
import threading
import time

import pytest


def _server_send_queue(server_port: int, client_port: int) -> int:
    """Bytes in pushd's send queue for the connection from `client_port` (/proc/net/tcp{,6})."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local_port = int(f[1].rsplit(":", 1)[1], 16)
            remote_port = int(f[2].rsplit(":", 1)[1], 16)
            if local_port == server_port and remote_port == client_port:
                total += int(f[4].split(":")[0], 16)
    return total


def _unread(sock: socket.socket) -> int:
    """Bytes received by the kernel that `sock`'s owner has not read (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def _publishes(topic: str, n: int) -> tuple[list[bytes], bytes]:
    bodies = [f"e{i}".encode() for i in range(n)]
    return bodies, b"".join(request_bytes("POST", f"/topics/{topic}", b) for b in bodies)


def _read_publish_responses(c: SyncConn, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = c.read_response()
        assert r.status == 200, (i, r.status, r.body[:200])
        ids.append(r.json()["id"])
    return ids


def test_5000_pipelined_publishes_written_before_reading(pushd):
    """5,000 publishes in one write, nothing read until the write is done: all 5,000 answers
    arrive in order, every event reaches the subscriber in order, RSS stays bounded."""
    n = 5000
    async def run():
        sub = await AsyncSSE.open(pushd.port, "/topics/bp5k")
        try:
            bodies, wire = _publishes("bp5k", n)
            rss0 = pushd.rss_kb()
            with SyncConn(pushd.port, timeout=30) as c:
                await asyncio.to_thread(c.send, wire)
                ids = await asyncio.to_thread(_read_publish_responses, c, n)
                c.send(request_bytes("GET", "/healthz"))  # still usable
                assert c.read_response().status == 200
            assert_strictly_increasing(ids, "pipelined publish ids")
            await sub.wait_events(n, 30)
            got = [(e.id, e.data) for e in sub.events]
            assert got == list(zip(ids, [b.decode() for b in bodies]))
            grown = pushd.rss_kb() - rss0
            assert grown < 64 * 1024, f"RSS grew by {grown} KiB"
        finally:
            await sub.close()

    asyncio.run(run())


STALL_PIPELINE = 8


@pytest.mark.pushd(env={"PUSHD_LIMITS_MAX_PIPELINED_REQUESTS": str(STALL_PIPELINE),
                        # the unparsed rest a stalled connection may keep: one largest request
                        "PUSHD_LIMITS_MAX_BATCH_BYTES": "16MiB"})
def test_parsing_stalls_while_answers_are_unread_then_resumes_in_order(pushd):
    """A client writes 60,000 publishes and reads nothing. pushd publishes only as many as the
    kernel's socket buffers hold answers for plus max_pipelined_requests, then stops parsing;
    once the client reads, every request is answered in order and every event delivered."""
    n = 60000
    async def run():
        sub = await AsyncSSE.open(pushd.port, "/topics/stall")
        try:
            bodies, wire = _publishes("stall", n)
            with SyncConn(pushd.port, timeout=60) as c:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                await asyncio.to_thread(c.send, wire)
                # wait until publishing stops (the subscriber's count holds still for 1 s)
                seen, still_since = -1, time.monotonic()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and time.monotonic() - still_since < 1.0:
                    await asyncio.sleep(0.2)
                    if len(sub.events) != seen:
                        seen, still_since = len(sub.events), time.monotonic()
                published = len(sub.events)
                queued = _unread(c.sock) + _server_send_queue(pushd.port, c.sock.getsockname()[1])
                # the smallest answer possible here, over-estimating what the buffers hold
                smallest = len(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                               b'Content-Length: 40\r\n\r\n') + 40
                assert published < n, "pushd parsed every request although no answer was read"
                assert published <= queued // smallest + STALL_PIPELINE + 1, (published, queued)
                ids = await asyncio.to_thread(_read_publish_responses, c, n)
            assert_strictly_increasing(ids, "pipelined publish ids")
            await sub.wait_events(n, 60)
            got = [(e.id, e.data) for e in sub.events]
            assert got == list(zip(ids, [b.decode() for b in bodies]))
        finally:
            await sub.close()

    asyncio.run(run())


@pytest.mark.pushd(env={"PUSHD_LIMITS_IDLE_TIMEOUT": "3s"})
def test_pipelining_flood_without_reading_is_held_back_then_cut(pushd):
    """A client floods pipelined publishes and never reads. pushd stops parsing once its answers
    back up and stops reading the socket, so TCP holds the client back (its writes block);
    memory stays bounded, a healthy subscriber keeps receiving, and once no answer has been taken
    for `limits.idle_timeout` the connection is closed."""
    one = request_bytes("POST", "/topics/flood", b"x" * 32)
    block = one * 2000
    stop = threading.Event()
    outcome = {}

    def flood():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect (see ws_util.RawWS)
        s.settimeout(30)
        s.connect(("127.0.0.1", pushd.port))
        sent = 0
        try:
            while not stop.is_set() and sent < 400 << 20:
                s.sendall(block)
                sent += len(block)
            outcome["result"] = f"still open after {sent} bytes"
        except (ConnectionResetError, BrokenPipeError):
            outcome["result"] = "cut"
        except OSError as e:
            outcome["result"] = f"{type(e).__name__}: {e}"
        finally:
            outcome["sent"] = sent
            s.close()

    async def run():
        sub = await AsyncSSE.open(pushd.port, "/topics/healthy")
        hwm0 = pushd.proc_status("VmHWM")
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        try:
            async with httpx.AsyncClient(timeout=5) as h:
                for i in range(100):
                    r = await h.post(pushd.url("/topics/healthy"), content=f"m{i}".encode())
                    assert r.status_code == 200, r.text
                    await sub.wait_for(lambda s: len(s.events) >= i + 1, 5, f"marker {i}")
                    if not t.is_alive() and i >= 10:
                        break
                    await asyncio.sleep(0.1)
            await asyncio.to_thread(t.join, 30)
            assert outcome.get("result") == "cut", outcome
            # Held back by TCP: far less than the 400 MiB it tried to send got through.
            assert outcome["sent"] < 64 << 20, outcome
            assert "answers not read" in pushd.log(200000), "closed by the idle timeout on unread answers"
            grown = pushd.proc_status("VmHWM") - hwm0
            assert grown < 64 * 1024, f"peak RSS grew by {grown} KiB"
            assert [e.data for e in sub.events] == [f"m{i}" for i in range(len(sub.events))]
        finally:
            stop.set()
            await sub.close()

    asyncio.run(run())
