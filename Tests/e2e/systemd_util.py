"""Helpers for the systemd-facing e2e tests: a notify socket the test owns, a socket-activation
launcher, and a way to start pushd by hand (when the test must watch it from the first instant)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import BACKENDS, pushd_binary


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET.

    `messages` holds (monotonic time, {KEY: VALUE}) for every datagram received so far."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def close(self) -> None:
        self.sock.close()

    def _recv(self, timeout: float) -> bool:
        self.sock.settimeout(max(0.001, timeout))
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return False
        fields = {}
        for line in data.decode("utf-8", "replace").split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        self.messages.append((time.monotonic(), fields))
        return True

    def wait_for(self, key: str, value: str | None = None, timeout: float = 20.0,
                 after: int = 0) -> tuple[int, float, dict[str, str]]:
        """Index, time and fields of the first message at index >= `after` with `key` (=`value`)."""
        end = time.monotonic() + timeout
        i = after
        while True:
            while i < len(self.messages):
                t, f = self.messages[i]
                if key in f and (value is None or f[key] == value):
                    return i, t, f
                i += 1
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}{'=' + value if value else ''} within {timeout}s; got "
                                     f"{[m[1] for m in self.messages[after:]][-10:]}")
            self._recv(left)

    def collect(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._recv(left)

    def times(self, key: str, since: float = 0.0) -> list[float]:
        return [t for t, f in self.messages if key in f and t >= since]


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PUSHD_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                                       "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")}
    env.update(extra)
    return env


def spawn(backend: str, port: int, log_path: Path, env: dict[str, str] | None = None,
          args: list[str] | None = None, socket_activate: bool = False) -> subprocess.Popen:
    """Starts pushd without waiting for it. With `socket_activate`, a small launcher binds
    127.0.0.1:`port`, puts the listening socket on fd 3, sets LISTEN_FDS=1 and LISTEN_PID to its own
    pid and execs pushd (the pid stays the same), the way systemd does; pushd's own --listen then
    names a port nobody listens on."""
    binary = pushd_binary()
    argv = [binary, "serve", *BACKENDS[backend], *(args or [])]
    if socket_activate:
        launcher = (
            "import os, socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
            "s.listen(4096)\n"
            "if s.fileno() != 3:\n"
            "    os.dup2(s.fileno(), 3)\n"
            "os.set_inheritable(3, True)\n"
            "os.environ['LISTEN_FDS'] = '1'\n"
            "os.environ['LISTEN_PID'] = str(os.getpid())\n"
            "os.execv(sys.argv[2], sys.argv[2:])\n")
        argv = [sys.executable, "-c", launcher, str(port), *argv]
    else:
        argv += ["--listen", f"127.0.0.1:{port}"]
    log = open(log_path, "wb")
    return subprocess.Popen(argv, env=child_env(env or {}), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def healthz(port: int, timeout: float = 1.0) -> int:
    """Status of GET /healthz, or 0 when the connection fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else 0
    except OSError:
        return 0


def raise_nofile(n: int = 20000) -> None:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n), hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
