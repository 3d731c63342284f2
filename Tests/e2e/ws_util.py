"""Helpers for the WebSocket e2e tests: a raw-socket client for hostile frames (RFC 6455 §5)."""
from __future__ import annotations

import base64
import os
import socket
import struct
import time


def handshake_bytes(path: str, port: int, extra: dict[str, str] | None = None,
                    key: str | None = None) -> bytes:
    key = key or base64.b64encode(os.urandom(16)).decode()
    h = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    h.update(extra or {})
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True,
          rsv: int = 0, declared: int | None = None) -> bytes:
    """A client frame; `declared` overrides the length field (to lie about it)."""
    n = len(payload) if declared is None else declared
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n <= 125:
        head = bytes([b0, mbit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class RawWS:
    """A blocking WebSocket client that sends whatever bytes it is told to."""

    def __init__(self, port: int, path: str = "/ws/echo", extra: dict[str, str] | None = None,
                 rcvbuf: int | None = None):
        """`rcvbuf` sets SO_RCVBUF before connecting, so the advertised window is small from the
        start. Shrinking it on a connected socket retracts a window already advertised, and since
        Linux 6.17 ("tcp: stronger sk_rcvbuf checks") the segments then dropped can take the
        peer's window updates with them: both sides stall in zero-window probing."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(handshake_bytes(path, port, extra))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split(" ", 2)[1]) if self.head else 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _need(self, n: int, deadline: float) -> bool:
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                return False
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read_frame(self, timeout: float = 5.0):
        """(opcode, payload) of the next server frame, or None on EOF/timeout."""
        deadline = time.monotonic() + timeout
        if not self._need(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "server frames must not be masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            if not self._need(4, deadline):
                return None
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            if not self._need(10, deadline):
                return None
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        if not self._need(off + n, deadline):
            return None
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def read_close(self, timeout: float = 5.0):
        """Skips data frames until a Close; returns its code (None if empty) or 'eof'."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.01, deadline - time.monotonic()))
            if f is None:
                return "eof"
            op, payload = f
            if op == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def eof_after(self, timeout: float = 3.0) -> bool:
        """True if the server closes the TCP connection within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
