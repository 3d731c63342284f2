"""Malformed and hostile requests get the right status (JSON error bodies) and never disturb a
healthy subscriber: after every attack a marker event is published and must arrive next.
"""
import asyncio
import time


from checks import run_attacks_beside_a_healthy_subscriber
from e2e_util import SyncConn, assert_json_error, request_bytes

TOPIC = "victim"


def _attack_bad_request_line(port):
    with SyncConn(port) as c:
        c.send(b"THIS IS NOT HTTP\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, (r.status, r.body)
        assert c.closed_by_peer(3), "connection should be closed after an unparseable request"


def _attack_bad_request_line_garbage_bytes(port):
    with SyncConn(port) as c:
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, (r.status, r.body)
        assert c.closed_by_peer(3)


def _attack_huge_header(port):
    with SyncConn(port) as c:
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"A" * (100 * 1024) + b"\r\n\r\n"
        c.send(big, ignore_errors=True)  # the server may answer and close before reading it all
        r = c.read_response()
        assert r.status == 431, (r.status, r.body[:200])
        assert c.closed_by_peer(3)


def _attack_many_headers(port):
    with SyncConn(port) as c:
        hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(2000))  # ~140 KB
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n", ignore_errors=True)
        r = c.read_response()
        assert r.status == 431, (r.status, r.body[:200])


def _attack_bad_chunk_size(port):
    with SyncConn(port) as c:
        c.send(f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "zz\r\nhello\r\n0\r\n\r\n".encode())
        r = c.read_response()
        assert_json_error(r, 400)
        assert c.closed_by_peer(3), "framing is lost after a bad chunk: the server must close"


def _attack_huge_content_length(port):
    with SyncConn(port) as c:
        t0 = time.monotonic()
        c.send(f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n"
               "Content-Length: 10000000000\r\n\r\n".encode())  # no body is ever sent
        r = c.read_response()
        assert time.monotonic() - t0 < 3, "413 must be answered before the body"
        assert_json_error(r, 413)
        assert c.closed_by_peer(3), "the unread body makes the connection unusable: close it"


def _attack_huge_content_length_expect_continue(port):
    with SyncConn(port) as c:
        c.send(f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               "Content-Length: 10000000000\r\n\r\n".encode())
        r = c.read_response()
        assert r.status != 100, "must not invite a 10 GB body"
        assert_json_error(r, 413)


def _attack_no_length(port):
    with SyncConn(port) as c:
        c.send(f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert_json_error(c.read_response(), 411)


def _attack_unknown_path(port):
    with SyncConn(port) as c:
        c.send(request_bytes("GET", "/definitely/not/a/route"))
        assert_json_error(c.read_response(), 404)
        # the connection is still usable after a clean 404
        c.send(request_bytes("GET", "/healthz"))
        assert c.read_response().status == 200


def _attack_wrong_method(port):
    with SyncConn(port) as c:
        c.send(request_bytes("DELETE", f"/topics/{TOPIC}"))
        r = c.read_response()
        assert_json_error(r, 405)
        allow = {m.strip().upper() for m in r.headers.get("allow", "").split(",")}
        assert {"GET", "POST"} <= allow, f"405 should carry Allow: GET, POST (got {allow})"
        c.send(request_bytes("PUT", f"/topics/{TOPIC}", b"data"))
        assert_json_error(c.read_response(), 405)


def _attack_truncated_and_dropped(port):
    with SyncConn(port) as c:  # half a request, then the client goes away
        c.send(f"POST /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf".encode())


ATTACKS = [
    _attack_bad_request_line,
    _attack_bad_request_line_garbage_bytes,
    _attack_huge_header,
    _attack_many_headers,
    _attack_bad_chunk_size,
    _attack_huge_content_length,
    _attack_huge_content_length_expect_continue,
    _attack_no_length,
    _attack_unknown_path,
    _attack_wrong_method,
    _attack_truncated_and_dropped,
]


def test_malformed_requests_and_healthy_subscriber(pushd):
    asyncio.run(run_attacks_beside_a_healthy_subscriber(pushd, TOPIC, ATTACKS, 15))
