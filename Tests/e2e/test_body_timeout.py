"""`limits.body_timeout` (docs/SECURITY.md row 64): a request body must arrive within the timeout,
counted from the end of the head and not reset by each byte, so a body that stalls or trickles in
cannot hold a connection (slowloris on the body; found by an adversarial run: 500 connections that
announced 1 MiB and stalled were all still open after 21 s). The daemon keeps answering meanwhile."""
import json
import time

import pytest

from e2e_util import SyncConn, http_request

ENV = {"PUSHD_LIMITS_BODY_TIMEOUT": "1s"}


def _expect_408(conn: SyncConn, started: float) -> float:
    r = conn.read_response()
    took = time.monotonic() - started
    assert r.status == 408, (r.status, r.body)
    body = json.loads(r.body)
    assert body["error"] == "request_timeout" and "body did not arrive within 1.0 s" in body["message"], body
    assert r.headers.get("connection", "").lower() == "close"
    return took


@pytest.mark.pushd(env=ENV)
def test_a_stalled_body_gets_408(pushd):
    c = SyncConn(pushd.port, timeout=10)
    started = time.monotonic()
    c.send(b"POST /topics/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    took = _expect_408(c, started)
    assert 0.9 <= took <= 4.0, f"408 after {took:.2f} s with body_timeout 1s"
    c.close()


@pytest.mark.pushd(env=ENV)
def test_a_trickled_chunked_body_gets_408(pushd):
    c = SyncConn(pushd.port, timeout=10)
    started = time.monotonic()
    c.send(b"POST /topics/slow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.sock.settimeout(0.25)
    answered = False
    while time.monotonic() - started < 6 and not answered:
        try:
            c.send(b"1\r\nx\r\n")  # one byte every 0.25 s: progress, but never done
        except OSError:
            break
        try:
            chunk = c.sock.recv(65536)
            c.buf += chunk
            answered = b"\r\n\r\n" in c.buf or not chunk
        except (TimeoutError, OSError):
            pass
    c.sock.settimeout(10)
    took = _expect_408(c, started)
    assert took <= 4.0, f"408 after {took:.2f} s: the clock was reset by the trickled bytes"
    c.close()


@pytest.mark.pushd(env=ENV)
def test_a_body_within_the_timeout_is_published(pushd):
    c = SyncConn(pushd.port, timeout=10)
    c.send(b"POST /topics/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
    time.sleep(0.5)
    c.send(b"56789")
    r = c.read_response()
    assert r.status == 200, (r.status, r.body)
    # The next request on the same connection has a fresh clock.
    time.sleep(0.7)
    c.send(b"POST /topics/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
    time.sleep(0.5)
    c.send(b"cd")
    assert c.read_response().status == 200
    c.close()
    assert http_request(pushd.port, "GET", "/healthz", None, {}).status == 200
