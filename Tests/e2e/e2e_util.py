"""Helpers for the pushd end-to-end tests: raw HTTP/1.1 over sockets (where bytes matter),
an incremental WHATWG-style SSE parser, asyncio SSE subscribers and keep-alive publishers.

Everything talks to 127.0.0.1 only. Third-party clients (curl, httpx, httpx-sse) are used
directly in the test modules; this file is the "raw bytes" side.
"""
from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from dataclasses import dataclass, field

ID_RE = re.compile(r"^\d+-\d+$")


def id_key(event_id: str) -> tuple[int, int]:
    """Event ids are `<unix-ms>-<seq>`; compare them numerically as (ms, seq)."""
    assert ID_RE.match(event_id), f"malformed event id {event_id!r}"
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def assert_strictly_increasing(ids: list[str], what: str = "ids") -> None:
    keys = [id_key(i) for i in ids]
    for i in range(1, len(keys)):
        assert keys[i - 1] < keys[i], (
            f"{what} not strictly increasing at index {i}: {ids[i - 1]!r} then {ids[i]!r}")


# ---------------------------------------------------------------------------------------------
# SSE parsing (WHATWG HTML §9.2.6, minus reconnection): \r\n, \r and \n all end a line.


@dataclass
class SSEEvent:
    id: str | None
    event: str | None
    data: str


class SSEParser:
    """Incremental SSE parser over bytes. `feed()` returns the events dispatched so far."""

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._id: bytes | None = None  # id field seen in the current block
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self.retry_lines = 0
        self.comments: list[bytes] = []
        self.lines_seen = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk
        if b"\r" in buf:
            # keep a trailing CR: it may be the first half of CRLF
            keep_cr = buf.endswith(b"\r")
            if keep_cr:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buf += b"\r"
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._buf = buf
            return []
        self._buf = buf[cut + 1:]
        out: list[SSEEvent] = []
        for line in buf[:cut].split(b"\n"):
            self.lines_seen += 1
            if not line:
                if self._id is not None:
                    self.last_event_id = self._id.decode()
                if self._data:
                    data = b"\n".join(self._data).decode("utf-8")
                    ev = self._event.decode() if self._event is not None else None
                    out.append(SSEEvent(self.last_event_id, ev, data))
                self._data, self._event, self._id = [], None, None
                continue
            if line[0] == 0x3A:  # ':'
                self.comments.append(line)
                continue
            name, sep, value = line.partition(b":")
            if sep and value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"id":
                if b"\0" not in value:
                    self._id = value
            elif name == b"event":
                self._event = value
            elif name == b"retry":
                self.retry_lines += 1
                if value.isdigit():
                    self.retry = int(value)
        return out


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 response framing


class ChunkedDecoder:
    """Incremental `Transfer-Encoding: chunked` decoder."""

    def __init__(self) -> None:
        self._buf = b""
        self._state = "size"  # size | data | crlf | done
        self._left = 0
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        out = bytearray()
        while True:
            if self._state == "size":
                nl = self._buf.find(b"\r\n")
                if nl < 0:
                    break
                size = int(self._buf[:nl].split(b";", 1)[0].strip(), 16)
                self._buf = self._buf[nl + 2:]
                if size == 0:
                    self._state, self.done = "done", True
                    break
                self._state, self._left = "data", size
            elif self._state == "data":
                if not self._buf:
                    break
                take = self._buf[:self._left]
                out += take
                self._buf = self._buf[len(take):]
                self._left -= len(take)
                if self._left == 0:
                    self._state = "crlf"
            elif self._state == "crlf":
                if len(self._buf) < 2:
                    break
                if self._buf[:2] != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
                self._buf = self._buf[2:]
                self._state = "size"
            else:
                break
        return bytes(out)


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    raw_head: bytes = b""

    def json(self):
        return json.loads(self.body)


def parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.split(b"\r\n")
    m = re.match(rb"^HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
    assert m, f"bad status line {lines[0]!r}"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        key = name.strip().decode("latin-1").lower()
        val = value.strip().decode("latin-1")
        headers[key] = headers[key] + ", " + val if key in headers else val
    return int(m.group(1)), (m.group(2) or b"").decode("latin-1"), headers


class SyncConn:
    """A blocking raw-socket HTTP/1.1 connection for hand-made (and malformed) requests."""

    def __init__(self, port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes, ignore_errors: bool = False) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if not ignore_errors:
                raise

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(262144)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed with {len(self.buf)}/{n} body bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed inside a line")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_response(self, head_request: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before a full response head: {self.buf[:200]!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status, reason, headers = parse_head(head)
        if head_request or status in (204, 304) or 100 <= status < 200:
            return Response(status, reason, headers, b"", head)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self._read_line().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self._read_line():  # trailers
                        pass
                    break
                body += self._read_exact(size)
                assert self._read_exact(2) == b"\r\n", "chunk data not followed by CRLF"
            return Response(status, reason, headers, bytes(body), head)
        if "content-length" in headers:
            return Response(status, reason, headers,
                            self._read_exact(int(headers["content-length"])), head)
        while self._fill():
            pass
        body, self.buf = self.buf, b""
        return Response(status, reason, headers, body, head)

    def closed_by_peer(self, timeout: float = 2.0) -> bool:
        """True if the server closes (EOF or reset) within `timeout` with no further bytes."""
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                if not self._fill():
                    return True
        except (socket.timeout, TimeoutError):
            return False
        return False


def request_bytes(method: str, path: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> bytes:
    hdrs = {"Host": "127.0.0.1"}
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode("latin-1") + b"\r\n" + (body or b"")


def assert_json_error(resp: Response, status: int) -> dict:
    assert resp.status == status, (
        f"expected {status}, got {resp.status} {resp.reason}: {resp.body[:300]!r}")
    ctype = resp.headers.get("content-type", "")
    assert ctype.startswith("application/json"), f"error content-type {ctype!r}"
    doc = json.loads(resp.body)
    assert isinstance(doc, dict), doc
    assert isinstance(doc.get("error"), str) and doc["error"], f"no 'error' code in {doc}"
    assert isinstance(doc.get("message"), str) and doc["message"], f"no 'message' in {doc}"
    return doc


# ---------------------------------------------------------------------------------------------
# asyncio SSE subscriber over a raw socket


class AsyncSSE:
    """One SSE subscription over a raw asyncio connection.

    `await AsyncSSE.open(port, path)` returns once the response head and the preamble
    (`retry:` line) have arrived, which is the "subscribed" signal.
    """

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.parser = SSEParser()
        self.events: list[SSEEvent] = []
        self.raw = bytearray()  # decoded body bytes, only if keep_raw
        self.keep_raw = False
        self.eof = False
        self.reset = False
        self._chunked: ChunkedDecoder | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.bytes_in = 0

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str] | None = None,
                   timeout: float = 10.0, rcvbuf: int | None = None,
                   keep_raw: bool = False, wait_preamble: bool = True) -> "AsyncSSE":
        self = cls()
        self.keep_raw = keep_raw
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        limit = 2 ** 16 if rcvbuf is None else max(rcvbuf, 1024)
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=limit)
        hdrs = {"Host": "127.0.0.1", "Accept": "text/event-stream"}
        hdrs.update(headers or {})
        self.writer.write(request_bytes("GET", path, None, hdrs))
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        self.status, _, self.headers = parse_head(head[:-4])
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._chunked = ChunkedDecoder()
        if rcvbuf is None:
            self._task = asyncio.ensure_future(self._pump())
        if wait_preamble and self.status == 200:
            await self.wait_for(lambda s: s.parser.retry_lines > 0, timeout, "retry: preamble")
        return self

    def _consume(self, chunk: bytes) -> None:
        self.bytes_in += len(chunk)
        if self._chunked is not None:
            chunk = self._chunked.feed(chunk)
        if self.keep_raw:
            self.raw += chunk
        self.events.extend(self.parser.feed(chunk))

    async def _pump(self) -> None:
        try:
            while True:
                chunk = await self.reader.read(262144)
                if not chunk:
                    break
                self._consume(chunk)
                self._changed.set()
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True
        finally:
            self.eof = True
            self._changed.set()

    async def read_some(self, timeout: float) -> bool:
        """Manual read for subscribers opened without a pump (rcvbuf set). False on EOF."""
        try:
            chunk = await asyncio.wait_for(self.reader.read(262144), timeout)
        except ConnectionResetError:
            self.reset = True
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            return False
        self._consume(chunk)
        return True

    async def wait_for(self, pred, timeout: float, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not pred(self):
            if self._task is None:
                left = end - time.monotonic()
                if left <= 0 or not await self.read_some(left):
                    if pred(self):
                        return
                    raise AssertionError(f"timed out / EOF waiting for {what}")
                continue
            if self.eof:
                if pred(self):
                    return
                raise AssertionError(
                    f"stream ended while waiting for {what} ({len(self.events)} events)")
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what} ({len(self.events)} events)")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_events(self, n: int, timeout: float) -> list[SSEEvent]:
        await self.wait_for(lambda s: len(s.events) >= n, timeout, f"{n} events")
        return self.events

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except Exception:
                pass


# ---------------------------------------------------------------------------------------------
# asyncio keep-alive publisher over a raw socket (fast, no pipelining: one request in flight)


class AsyncPublisher:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def __aexit__(self, *exc):
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except Exception:
            pass

    async def read_response(self, timeout: float = 10.0) -> Response:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status, reason, headers = parse_head(head[:-4])
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)
                size = int(line[:-2].split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout)) != b"\r\n":
                        pass
                    break
                body += await asyncio.wait_for(self.reader.readexactly(size + 2), timeout)
                del body[-2:]
            return Response(status, reason, headers, bytes(body), head)
        n = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(n), timeout) if n else b""
        return Response(status, reason, headers, body, head)

    async def publish(self, topic: str, data: bytes, event: str | None = None,
                      timeout: float = 10.0) -> str:
        path = f"/topics/{topic}" + (f"?event={event}" if event else "")
        self.writer.write(request_bytes("POST", path, data))
        resp = await self.read_response(timeout)
        assert resp.status == 200, f"publish -> {resp.status}: {resp.body[:200]!r}"
        doc = resp.json()
        assert doc.get("topic") == topic, doc
        assert ID_RE.match(doc.get("id", "")), doc
        return doc["id"]


async def wait_progress(subs, done, timeout: float, stall: float = 5.0) -> None:
    """Wait until `done(sub)` holds for every subscriber, or until nothing new arrived for
    `stall` seconds, or `timeout` in total. Never raises: the caller compares what arrived."""
    end = time.monotonic() + timeout
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < end:
        if all(done(s) or s.eof for s in subs):
            return
        total = sum(s.bytes_in for s in subs)
        now = time.monotonic()
        if total != last_total:
            last_total, last_change = total, now
        elif now - last_change > stall:
            return
        await asyncio.sleep(0.05)


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
# Replay / delivery-contract helpers (issue #3)

GAP_EVENT = "pushd.gap"


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 10.0) -> Response:
    """One request on a fresh raw connection; returns the parsed response."""
    with SyncConn(port, timeout=timeout) as c:
        c.send(request_bytes(method, path, body, headers))
        return c.read_response()


def publish_sync(port: int, topic: str, data: bytes | str, event: str | None = None,
                 headers: dict[str, str] | None = None) -> str:
    """POST /topics/{topic}; asserts 200 and returns the event id."""
    if isinstance(data, str):
        data = data.encode()
    path = f"/topics/{topic}" + (f"?event={event}" if event else "")
    r = http_request(port, "POST", path, data, headers)
    assert r.status == 200, f"publish {topic} -> {r.status}: {r.body[:200]!r}"
    doc = r.json()
    assert ID_RE.match(doc.get("id", "")), doc
    return doc["id"]


def gap_info(ev: SSEEvent) -> dict:
    """The JSON of a `pushd.gap` event, checked for shape."""
    assert ev.event == GAP_EVENT, ev
    doc = json.loads(ev.data)
    assert set(doc) == {"last_event_id", "oldest_retained"}, doc
    assert isinstance(doc["last_event_id"], str) and isinstance(doc["oldest_retained"], str), doc
    assert doc["oldest_retained"] == "" or ID_RE.match(doc["oldest_retained"]), doc
    return doc


async def subscribe_until_marker(port: int, path: str, marker_topic: str,
                                 headers: dict[str, str] | None = None,
                                 timeout: float = 10.0) -> list[SSEEvent]:
    """Subscribe, then publish a marker event to `marker_topic` and return every event that
    arrived before the marker (the gap signal and the replay — nothing is left to timing)."""
    sse = await AsyncSSE.open(port, path, headers=headers)
    try:
        marker = f"marker-{time.monotonic_ns()}"
        mid = await asyncio.get_running_loop().run_in_executor(
            None, lambda: publish_sync(port, marker_topic, marker))
        await sse.wait_for(lambda s: any(e.id == mid for e in s.events), timeout, "the marker")
        evs = list(sse.events)
        i = next(k for k, e in enumerate(evs) if e.id == mid)
        assert evs[i].data == marker
        return evs[:i]
    finally:
        await sse.close()


def sse_block_problems(raw: bytes) -> list[str]:
    """Check an SSE body is made of whole, well-formed pushd events: every block ends with a blank
    line, every line is a known field or a comment, and every event block has an id and data."""
    problems: list[str] = []
    text = raw.replace(b"\r\n", b"\n")
    blocks = text.split(b"\n\n")
    tail = blocks.pop()  # after the last blank line: must be empty (no torn event)
    if tail:
        problems.append(f"torn trailing block {tail[:80]!r}")
    for b in blocks:
        lines = b.split(b"\n")
        fields = {}
        for line in lines:
            if not line or line.startswith(b":"):
                continue
            name, sep, _ = line.partition(b":")
            if not sep or name not in (b"id", b"data", b"event", b"retry"):
                problems.append(f"bad line {line[:80]!r}")
                break
            fields[name] = fields.get(name, 0) + 1
        if fields.get(b"id", 0) > 1 or fields.get(b"event", 0) > 1:
            problems.append(f"repeated field in block {b[:120]!r}")
        if b"id" in fields and b"data" not in fields:
            problems.append(f"event block without data {b[:120]!r}")
        if len(problems) > 5:
            break
    return problems
