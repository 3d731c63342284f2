"""The hostile-input table of docs/SECURITY.md (issue #6), beyond test_malformed.py: request
smuggling shapes, slowloris, connection floods (per client address and overall), pipelining and
publish floods, injection through event names, ids and data, bad topics and batches.

Throughout, one healthy subscriber keeps receiving every event: after each attack a marker event
is published and must arrive next, with nothing missed and nothing extra. Limits are lowered (and
the loopback exemption switched off) so the attacks stay small and the test bounded per backend.
"""
import asyncio
import json
import resource
import socket
import time

import pytest

from checks import run_attacks_beside_a_healthy_subscriber
from e2e_util import AsyncSSE, SyncConn, assert_json_error, request_bytes

TOPIC = "victim"
PER_IP = 200
MAX_CONNECTIONS = 1000
RATE = 50
BURST = 100

LIMITS_ENV = {
    "PUSHD_LIMITS_HEADER_TIMEOUT": "1s",
    "PUSHD_LIMITS_EXEMPT_LOOPBACK": "false",
    "PUSHD_LIMITS_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "PUSHD_LIMITS_MAX_CONNECTIONS_PER_IP": str(PER_IP),
    "PUSHD_LIMITS_PUBLISH_RATE": str(RATE),
    "PUSHD_LIMITS_PUBLISH_BURST": str(BURST),
}


class SrcConn(SyncConn):
    """A SyncConn from a chosen loopback source address (127.0.0.x), so attacks from "other
    clients" do not share the healthy publisher's per-address limits."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False


def _refused_400_and_closed(port, raw: bytes, status: int = 400):
    with SrcConn(port, "127.0.0.10") as c:
        c.send(raw, ignore_errors=True)
        r = c.read_response()
        assert_json_error(r, status)
        assert r.headers.get("connection", "").lower() == "close", r.headers
        assert c.closed_by_peer(3), "the byte stream cannot be trusted after a framing error: close"


# --- request smuggling shapes (RFC 9112 §6.1, §6.3, §5.2, §2.2) -------------------------------

def _attack_smuggle_cl_te(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def _attack_smuggle_te_cl(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            "Content-Length: 3\r\n\r\n0\r\n\r\n".encode())


def _attack_smuggle_two_content_lengths(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                            "Content-Length: 5\r\n\r\nabcde".encode())


def _attack_smuggle_content_length_list(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: 3, 5\r\n\r\nabcde".encode())


def _attack_smuggle_content_length_sign(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: +3\r\n\r\nabc".encode())


def _attack_smuggle_obs_fold(port):
    _refused_400_and_closed(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")


def _attack_smuggle_bare_lf(port):
    _refused_400_and_closed(port, b"GET /healthz HTTP/1.1\nHost: x\n\n")


def _attack_smuggle_bare_cr(port):
    _refused_400_and_closed(port, b"GET /healthz HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n")


def _attack_smuggle_space_before_colon(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n"
                            "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n".encode())


def _attack_te_not_chunked(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n"
                            "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".encode(), 501)


def _attack_te_in_http10(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.0\r\nHost: x\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode())


def _attack_two_hosts(port):
    _refused_400_and_closed(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")


def _attack_nul_in_header(port):
    _refused_400_and_closed(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n")


def _attack_absurd_chunk_size(port):
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "fffffffffffffffffff\r\n".encode())


def _attack_chunk_size_overflow_to_small(port):
    # 2^64 + 5 would wrap to 5 in a careless 64-bit parser (17 hex digits)
    _refused_400_and_closed(port, f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "10000000000000005\r\nhello\r\n0\r\n\r\n".encode())


def _attack_chunk_extension_flood(port):
    _refused_400_and_closed(port, (f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "5;" + "x" * 20000 + "\r\nhello\r\n0\r\n\r\n").encode())


def _attack_chunked_body_over_limit(port):
    with SrcConn(port, "127.0.0.10") as c:
        c.send(f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        c.send(b"500000\r\n", ignore_errors=True)  # 5 MiB announced: over every body limit
        assert_json_error(c.read_response(), 413)
        assert c.closed_by_peer(3)


def _attack_request_line_too_long(port):
    _refused_400_and_closed(port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)


def _attack_http2_preface(port):
    with SrcConn(port, "127.0.0.10") as c:
        c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ignore_errors=True)
        r = c.read_response()
        assert r.status in (400, 505), r.status
        assert c.closed_by_peer(3)


def _attack_leading_empty_lines_flood(port):
    _refused_400_and_closed(port, b"\r\n" * 1000 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")


# --- slowloris and timeouts -------------------------------------------------------------------

def _attack_slowloris(port):
    with SrcConn(port, "127.0.0.11") as c:
        t0 = time.monotonic()
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(6):  # one header byte every 0.3 s: never completes within 1 s
            time.sleep(0.3)
            try:
                c.sock.sendall(b"X")
            except OSError:
                break
        r = c.read_response()
        assert_json_error(r, 408)
        assert time.monotonic() - t0 < 4, "the head timeout must not restart on every byte"
        assert c.closed_by_peer(3)


# --- injection through names, ids and data ---------------------------------------------------

def _attack_event_name_crlf(port):
    for name in ("a%0D%0Adata:%20evil", "a%0Aid:%201", "a%00", "a%0D"):
        with SrcConn(port, "127.0.0.12") as c:
            c.send(request_bytes("POST", f"/topics/{TOPIC}?event={name}", b"x"))
            assert_json_error(c.read_response(), 400)


def _attack_last_event_id_crlf_nul(port):
    for q in ("1%0D%0Aevent:%20evil%0D%0A", "%00", "1%0A2"):
        with SrcConn(port, "127.0.0.12") as c:
            c.send(request_bytes("GET", f"/topics/inject?last_event_id={q}"))
            c.sock.settimeout(2)
            data = b""
            end = time.monotonic() + 2
            while b"pushd.gap" not in data or not data.endswith(b"\n\n"):
                if time.monotonic() > end:
                    break
                chunk = c.sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            body = data.split(b"\r\n\r\n", 1)[1]
            lines = [line for line in body.split(b"\n") if line]
            assert all(line.startswith((b"retry:", b":", b"event: pushd.gap", b"data: {")) for line in lines), lines
            assert b"\r" not in body, body
    with SrcConn(port, "127.0.0.12") as c:  # as a header: a control byte is a 400
        c.send(b"GET /topics/inject HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\x00\r\n\r\n")
        assert_json_error(c.read_response(), 400)


def _attack_data_with_sse_fields(port):
    async def run():
        sub = await AsyncSSE.open(port, "/topics/inject")
        try:
            evil = b"x\r\nevent: evil\r\nid: 999\r\n\r\ndata: injected\nretry: 1\r"
            with SrcConn(port, "127.0.0.12") as c:
                c.send(request_bytes("POST", "/topics/inject", evil))
                assert c.read_response().status == 200
            await sub.wait_for(lambda s: len(s.events) >= 1, 5, "the injected event")
            await asyncio.sleep(0.2)
            assert len(sub.events) == 1, [(e.event, e.data) for e in sub.events]
            e = sub.events[0]
            assert e.event in (None, "", "message"), e.event
            assert e.id != "999"
            assert e.data.replace("\r\n", "\n").replace("\r", "\n") == evil.decode().replace("\r\n", "\n").replace("\r", "\n")
        finally:
            await sub.close()
    asyncio.run(run())


def _attack_invalid_utf8_data(port):
    for data in (b"\xff\xfe", b"ok\xc0\xaf", b"\xed\xa0\x80", b"abc\xe2\x82"):
        with SrcConn(port, "127.0.0.12") as c:
            c.send(request_bytes("POST", f"/topics/{TOPIC}", data))
            assert_json_error(c.read_response(), 415)


# --- topics ----------------------------------------------------------------------------------

def _attack_bad_topics(port):
    for path in ("/topics/a/../b", "/topics/a%2F..%2Fb", "/topics/..", "/topics/a//b", "/topics/a%zz",
                 "/topics/a%", "/topics/%00", "/topics/a%0Ab", "/topics/" + "a" * 300, "/topics/a%20b"):
        with SrcConn(port, "127.0.0.12") as c:
            c.send(request_bytes("POST", path, b"x"))
            assert_json_error(c.read_response(), 400)
        with SrcConn(port, "127.0.0.12") as c:
            c.send(request_bytes("GET", path))
            assert_json_error(c.read_response(), 400)


def _attack_too_many_topics(port):
    with SrcConn(port, "127.0.0.12") as c:
        c.send(request_bytes("GET", "/subscribe?" + "&".join(f"topic=t{i}" for i in range(100))))
        assert_json_error(c.read_response(), 400)


# --- JSON batches ----------------------------------------------------------------------------

def _post_batch(port, body: bytes, status: int):
    with SrcConn(port, "127.0.0.12") as c:
        c.send(request_bytes("POST", "/publish", body, {"Content-Type": "application/json"}), ignore_errors=True)
        assert_json_error(c.read_response(), status)


def _attack_batch_deep_nesting(port):
    _post_batch(port, b'{"events":' + b"[" * 100000 + b"]" * 100000 + b"}", 400)


def _attack_batch_too_many_events(port):
    one = b'{"topic":"flood","data":"x"}'
    _post_batch(port, b'{"events":[' + b",".join([one] * 10001) + b"]}", 413)


def _attack_batch_too_large(port):
    with SrcConn(port, "127.0.0.12") as c:
        t0 = time.monotonic()
        c.send(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 104857600\r\n\r\n")
        assert_json_error(c.read_response(), 413)
        assert time.monotonic() - t0 < 3
        assert c.closed_by_peer(3)


def _attack_batch_bad_json(port):
    for body in (b'{"events":[{"topic":"t","data":"\\ud800"}', b'{"events":[1,]}', b'{"events":"x"}',
                 b'{"events":[{"topic":"t","data":"x","topic":"u"}]}', b"\xff"):
        _post_batch(port, body, 400)


# --- floods ----------------------------------------------------------------------------------

def _attack_pipelining_flood(port):
    """60,000 pipelined requests sent before reading anything: pushd answers them all in order
    (or, once over 4 MiB of responses are queued unread, closes the connection) — it neither
    stalls nor buffers without bound, and other clients are not delayed."""
    with SrcConn(port, "127.0.0.13") as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        c.sock.settimeout(15)
        closed = False
        try:
            for _ in range(60):
                c.sock.sendall(req * 1000)
        except OSError:
            closed = True  # reset by pushd: the other allowed outcome
        c.sock.settimeout(5)
        data = b""
        try:
            while data.count(b"HTTP/1.1 200 OK\r\n") < 60000:
                chunk = c.sock.recv(1 << 20)
                if not chunk:
                    closed = True
                    break
                data += chunk
        except ConnectionResetError:
            closed = True
        answered = data.count(b"HTTP/1.1 200 OK\r\n")
        assert closed or answered == 60000, (closed, answered)


def _attack_publish_flood(port):
    """300 pipelined publishes from one address: the burst passes, then 429 + Retry-After."""
    with SrcConn(port, "127.0.0.14") as c:
        c.send(b"".join(request_bytes("POST", "/topics/flood", b"x") for _ in range(300)))
        statuses = []
        retry = None
        for _ in range(300):
            r = c.read_response()
            statuses.append(r.status)
            if r.status == 429:
                retry = r.headers.get("retry-after")
                assert json.loads(r.body)["error"] == "rate_limited"
        ok = statuses.count(200)
        assert BURST <= ok <= BURST + RATE * 2, statuses
        assert statuses.count(429) == 300 - ok, statuses
        assert retry is not None and int(retry) >= 1, retry
    # a batch counts its events: 150 events from a fresh address is over the burst
    with SrcConn(port, "127.0.0.15") as c:
        one = b'{"topic":"flood","data":"x"}'
        c.send(request_bytes("POST", "/publish", b'{"events":[' + b",".join([one] * 60) + b"]}",
                             {"Content-Type": "application/json"}) * 2)
        assert c.read_response().status == 200
        r = c.read_response()
        assert_json_error(r, 429)
        assert "retry-after" in r.headers


def _open_many(port, source: str, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def _classify(socks: list[socket.socket], want_refused: int, code: bytes, timeout: float = 15):
    """Waits until `want_refused` sockets got a 503 with `code`; returns (refused, silent)."""
    refused, pending = [], list(socks)
    end = time.monotonic() + timeout
    while len(refused) < want_refused and time.monotonic() < end:
        still = []
        for s in pending:
            try:
                data = s.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, TimeoutError):
                still.append(s)
                continue
            except ConnectionResetError:
                data = b"reset"
            assert data.startswith(b"HTTP/1.1 503 "), data[:200]
            assert b"Retry-After: " in data and code in data, data
            refused.append(s)
        pending = still
        time.sleep(0.1)
    time.sleep(0.3)
    for s in list(pending):  # nothing else arrives for the admitted ones
        try:
            data = s.recv(4096, socket.MSG_DONTWAIT)
            if data:
                refused.append(s)
                pending.remove(s)
        except (BlockingIOError, TimeoutError):
            pass
    return refused, pending


def _attack_10000_connections_one_ip(port):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 20000)), hard))
    socks = _open_many(port, "127.0.0.2", 10000)
    try:
        refused, admitted = _classify(socks, 10000 - PER_IP, b"too_many_connections_from_client")
        assert len(admitted) == PER_IP, (len(admitted), len(refused))
        assert len(refused) == 10000 - PER_IP
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    with SrcConn(port, "127.0.0.2") as c:  # the address is welcome again once its connections close
        c.send(request_bytes("GET", "/healthz"))
        assert c.read_response().status == 200


def _attack_connections_overall(port):
    socks = []
    try:
        for k in range(3, 9):  # 6 addresses × 200 = 1200 > limits.max_connections (1000)
            socks += _open_many(port, f"127.0.0.{k}", PER_IP)
        refused, admitted = _classify(socks, 200, b'"too_many_connections"', 10)
        assert len(admitted) <= MAX_CONNECTIONS, len(admitted)
        assert len(refused) >= len(socks) - MAX_CONNECTIONS, len(refused)
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)


ATTACKS = [
    _attack_smuggle_cl_te,
    _attack_smuggle_te_cl,
    _attack_smuggle_two_content_lengths,
    _attack_smuggle_content_length_list,
    _attack_smuggle_content_length_sign,
    _attack_smuggle_obs_fold,
    _attack_smuggle_bare_lf,
    _attack_smuggle_bare_cr,
    _attack_smuggle_space_before_colon,
    _attack_te_not_chunked,
    _attack_te_in_http10,
    _attack_two_hosts,
    _attack_nul_in_header,
    _attack_absurd_chunk_size,
    _attack_chunk_size_overflow_to_small,
    _attack_chunk_extension_flood,
    _attack_chunked_body_over_limit,
    _attack_request_line_too_long,
    _attack_http2_preface,
    _attack_leading_empty_lines_flood,
    _attack_slowloris,
    _attack_event_name_crlf,
    _attack_last_event_id_crlf_nul,
    _attack_data_with_sse_fields,
    _attack_invalid_utf8_data,
    _attack_bad_topics,
    _attack_too_many_topics,
    _attack_batch_deep_nesting,
    _attack_batch_too_many_events,
    _attack_batch_too_large,
    _attack_batch_bad_json,
    _attack_pipelining_flood,
    _attack_publish_flood,
    _attack_10000_connections_one_ip,
    _attack_connections_overall,
]


@pytest.mark.pushd(env=LIMITS_ENV)
def test_hostile_inputs_and_healthy_subscriber(pushd):
    asyncio.run(run_attacks_beside_a_healthy_subscriber(
        pushd, TOPIC, ATTACKS, 30, errors=(AssertionError, OSError, EOFError, ValueError)))


@pytest.mark.pushd(env={"PUSHD_LIMITS_PUBLISH_RATE": "5", "PUSHD_LIMITS_PUBLISH_BURST": "5"})
def test_loopback_exempt_by_default(pushd):
    """With limits.exempt_loopback (the default) the local application is not rate-limited."""
    with SyncConn(pushd.port) as c:
        c.send(b"".join(request_bytes("POST", "/topics/local", b"x") for _ in range(50)))
        assert [c.read_response().status for _ in range(50)] == [200] * 50


# Dot segments in a topic name (RFC 3986 §5.2.4): a reverse proxy that removes them would map
# `./private/a` or `private/../a` onto `private/a`, another topic (perhaps a private one).
DOT_SEGMENT_TOPICS = [
    "./private/a", "private/./a", ".", "a/.", "private/../a", "..",
    "%2e", "%2E/private/a", ".%2Fprivate%2Fa", "a%2F%2e%2Fb", "private/%2e%2E/a", "%2e%2e%2Fprivate%2Fa",
]


def test_dot_segment_topics_refused(pushd):
    """`.` and `..` segments, plain or percent-encoded, are `400 bad_topic` for publish, SSE
    (path and `?topic=`), the WebSocket upgrade and the WebSocket `subscribe` command; dots inside
    a longer segment stay valid (SECURITY.md row 65)."""
    import websockets

    def bad_topic(r):
        assert assert_json_error(r, 400)["error"] == "bad_topic", r.body

    for raw in DOT_SEGMENT_TOPICS:
        with SyncConn(pushd.port) as c:
            c.send(request_bytes("POST", f"/topics/{raw}", b"x"))
            bad_topic(c.read_response())
            c.send(request_bytes("GET", f"/topics/{raw}"))
            bad_topic(c.read_response())
            c.send(request_bytes("GET", f"/subscribe?topic={raw}"))
            bad_topic(c.read_response())
        with SyncConn(pushd.port) as c:
            c.send(request_bytes("GET", f"/topics/{raw}", headers={
                "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}))
            bad_topic(c.read_response())
    for fine in (".a", "a.", "...", "a/.b./c", "a..b"):
        with SyncConn(pushd.port) as c:
            c.send(request_bytes("POST", f"/topics/{fine}", b"x"))
            r = c.read_response()
            assert r.status == 200 and r.json()["topic"] == fine, (fine, r.status, r.body)

    async def ws_commands():
        async with websockets.connect(f"ws://127.0.0.1:{pushd.port}/subscribe", ping_interval=None) as ws:
            for i, name in enumerate(["./private/a", "private/./a", ".", "a/.", "private/../a"]):
                await ws.send(json.dumps({"op": "subscribe", "topic": name, "ref": f"d{i}"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply["op"] == "error" and reply["code"] == "bad_topic" and reply["ref"] == f"d{i}", reply
            await ws.send(json.dumps({"op": "subscribe", "topic": ".a", "ref": "ok"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"op": "ack", "ref": "ok"}
    asyncio.run(ws_commands())
