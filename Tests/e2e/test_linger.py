"""Lingering close (RFC 9112 §9.6; docs/SECURITY.md rows 53-56): when pushd answers an error
before it has read the request to its end (413 from Content-Length, 431) and closes, the client
may still be sending. pushd shuts down its write side after the answer (FIN) and reads and
discards what still arrives for `limits.linger_timeout` / `limits.linger_bytes`, so the client
reads the whole answer and a clean end of stream instead of a connection reset."""
import json
import socket
import threading
import time

import pytest

from e2e_util import parse_head
from ws_util import RawWS, frame

BIG = 10 * 1000 * 1000


def _send_while_reading(port: int, head: bytes, body_size: int,
                        sock: socket.socket | None = None) -> tuple[bytes, str, str]:
    """Sends `head` + `body_size` bytes in one blocking sendall on a thread while this thread reads.
    Returns (bytes read, how reading ended: "eof" | "reset" | "timeout", how sending ended).
    `sock`: an already connected socket to use (and close) instead of a new connection."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=10)
    sender = {}

    def send():
        try:
            s.sendall(head + b"a" * body_size)
            sender["end"] = "complete"
        except OSError as e:
            sender["end"] = type(e).__name__

    t = threading.Thread(target=send, daemon=True)
    t.start()
    data = b""
    ended = "timeout"
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                ended = "eof"
                break
            data += chunk
    except ConnectionResetError:
        ended = "reset"
    except (socket.timeout, TimeoutError):
        ended = "timeout"
    t.join(15)
    s.close()
    return data, ended, sender.get("end", "still sending")


def _assert_json_answer(data: bytes, status: int, code: str):
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head: {data[:300]!r}"
    got, _, headers = parse_head(head)
    assert got == status, (got, body[:300])
    assert headers.get("connection", "").lower() == "close", headers
    assert len(body) == int(headers["content-length"]), (len(body), headers)
    doc = json.loads(body)
    assert doc["error"] == code, doc


def test_413_before_a_10mb_body_is_read_by_a_client_still_sending(pushd):
    head = b"POST /topics/linger HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG
    data, ended, _ = _send_while_reading(pushd.port, head, BIG)
    _assert_json_answer(data, 413, "payload_too_large")
    assert ended == "eof", f"expected a FIN after the 413, reading ended with {ended}"
    assert pushd.alive()


def test_431_for_a_huge_header_is_read_by_a_client_still_sending(pushd):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: "
    data, ended, _ = _send_while_reading(pushd.port, head, BIG)
    _assert_json_answer(data, 431, "headers_too_large")
    assert ended == "eof", f"expected a FIN after the 431, reading ended with {ended}"
    assert pushd.alive()


@pytest.mark.pushd(env={"PUSHD_LIMITS_LINGER_TIMEOUT": "1s", "PUSHD_LIMITS_LINGER_BYTES": "256KiB"})
def test_linger_is_bounded_in_time_and_bytes(pushd):
    """A client that keeps the connection open after the error is cut after linger_timeout; one
    that keeps sending is cut after linger_bytes."""
    head = b"POST /topics/linger HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG
    # time: send the head only, read the answer and the FIN, then trickle bytes until reset
    with socket.create_connection(("127.0.0.1", pushd.port), timeout=5) as s:
        s.sendall(head + b"a" * 1000)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        _assert_json_answer(data, 413, "payload_too_large")
        t0 = time.monotonic()
        cut = None
        while time.monotonic() - t0 < 6:
            try:
                s.sendall(b"a" * 100)
            except (ConnectionResetError, BrokenPipeError):
                cut = time.monotonic() - t0
                break
            time.sleep(0.05)
        assert cut is not None and 0.5 <= cut <= 3.5, cut
    # bytes: a fast sender is cut after about 256 KiB discarded, long before 1 s
    t0 = time.monotonic()
    data, ended, sent = _send_while_reading(pushd.port, head, BIG)
    _assert_json_answer(data, 413, "payload_too_large")
    assert ended == "eof", ended
    assert sent in ("ConnectionResetError", "BrokenPipeError"), sent
    assert time.monotonic() - t0 < 5


@pytest.mark.pushd(env={"PUSHD_LIMITS_LINGER_TIMEOUT": "0"})
def test_linger_off_closes_at_once(pushd):
    head = b"POST /topics/linger HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG
    with socket.create_connection(("127.0.0.1", pushd.port), timeout=5) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        _assert_json_answer(data, 413, "payload_too_large")


@pytest.mark.pushd(env={"PUSHD_WEBSOCKET_ECHO_ENDPOINT": "true"})
def test_websocket_1009_is_read_by_a_client_still_sending(pushd):
    """A WebSocket closed by the server (here 1009 for a 10 MB frame, decided from its length field)
    lingers too: the client reads the Close frame and then a FIN, never a reset, although the
    rest of its frame is still arriving (RFC 6455 §7.1.1: the server closes the TCP connection)."""
    ws = RawWS(pushd.port)
    assert ws.status == 101 and ws.buf == b""
    head = frame(0x2, b"", declared=BIG)[:10] + b"\0\0\0\0"  # header + masking key, then BIG bytes
    data, ended, _ = _send_while_reading(pushd.port, head, BIG, sock=ws.sock)
    assert data[:1] == b"\x88", f"expected a Close frame first: {data[:40]!r}"
    assert int.from_bytes(data[2:4], "big") == 1009, data[:40]
    assert ended == "eof", f"expected a FIN after the Close frame, reading ended with {ended}"
    assert pushd.alive()
