"""pytest fixtures that run the real pushd binary.

Binary: $PUSHD_BIN, else .build/release/pushd, else .build/debug/pushd (repo root).
Backends: every test that uses `pushd` (or `pushd_factory`) runs once per backend:
    io_uring  --event-loop io_uring --workers 1
    epoll     --event-loop epoll    --workers 1
    workers2  --event-loop io_uring --workers 2
Select a subset with PUSHD_E2E_BACKENDS=epoll,io_uring (comma separated).

Per-test configuration: `@pytest.mark.pushd(env={"PUSHD_SSE_HEARTBEAT": "1s"}, args=[...])`,
or call `pushd_factory(env=..., args=...)` for more than one daemon in a test.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from e2e_util import free_port

REPO = Path(__file__).resolve().parents[2]

BACKENDS: dict[str, list[str]] = {
    "io_uring": ["--event-loop", "io_uring", "--workers", "1"],
    "epoll": ["--event-loop", "epoll", "--workers", "1"],
    "workers2": ["--event-loop", "io_uring", "--workers", "2"],
}


def _selected_backends() -> list[str]:
    sel = os.environ.get("PUSHD_E2E_BACKENDS", "").strip()
    if not sel:
        return list(BACKENDS)
    names = [b.strip() for b in sel.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        raise pytest.UsageError(f"PUSHD_E2E_BACKENDS: unknown backend(s) {unknown}")
    return names


def pushd_binary() -> str:
    env_bin = os.environ.get("PUSHD_BIN")
    if env_bin:
        return env_bin
    for cfg in ("release", "debug"):
        p = REPO / ".build" / cfg / "pushd"
        if p.exists():
            return str(p)
    raise pytest.UsageError("pushd binary not found: build it (swift build -c release) or set PUSHD_BIN")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pushd(env=None, args=None): extra environment / CLI args for the daemon")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


class Pushd:
    """A running pushd. Attributes: base_url, host, port, pid, proc, backend, argv, env, log_path."""

    def __init__(self, argv, env, backend, port, log_path: Path):
        self.argv = argv
        self.env = env
        self.backend = backend
        self.host = "127.0.0.1"
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self, tail: int = 8000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-tail:].decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def proc_status(self, key: str) -> int:
        """A `kB` field of /proc/PID/status (VmRSS, VmHWM, Threads...) as an int."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def rss_kb(self) -> int:
        return self.proc_status("VmRSS")

    def num_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def client(self, **kw) -> httpx.Client:
        """An httpx client for this daemon (a TLS daemon overrides it to trust its CA)."""
        return httpx.Client(**kw)

    def wait_healthy(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        last = "no attempt"
        with self.client(timeout=1.0) as c:
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"pushd exited with {self.proc.returncode} before serving\n"
                        f"argv: {self.argv}\n--- pushd output ---\n{self.log()}")
                try:
                    r = c.get(self.url("/healthz"))
                    if r.status_code == 200:
                        return
                    last = f"status {r.status_code}"
                except httpx.HTTPError as e:
                    last = repr(e)
                time.sleep(0.05)
        raise RuntimeError(f"pushd not healthy after {timeout}s ({last})\n"
                           f"argv: {self.argv}\n--- pushd output ---\n{self.log()}")

    def stop(self) -> None:
        self.stopped_by_test = True  # a deliberate stop (e.g. a restart test) is not a crash
        if self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.stop_seconds = time.monotonic() - t0
        self.exit_code = self.proc.returncode
        self._log.close()


_STARTUP_FAILURES: dict[tuple, str] = {}


@pytest.fixture(params=_selected_backends())
def backend(request) -> str:
    return request.param


@pytest.fixture
def pushd_factory(backend, tmp_path, request):
    """`start(env=None, args=None) -> Pushd`: start a daemon on a fresh port and wait for /healthz."""
    started: list[Pushd] = []

    def start(env: dict[str, str] | None = None, args: list[str] | None = None,
              port: int | None = None, prefix: list[str] | None = None) -> Pushd:
        """`port`: listen on this port instead of a fresh one (a restart on the same address).
        `prefix`: a command that execs the daemon in place (e.g. `prlimit --nofile=64:64`)."""
        binary = pushd_binary()
        key = (binary, backend, tuple(sorted((env or {}).items())), tuple(args or ()), tuple(prefix or ()))
        if key in _STARTUP_FAILURES:  # do not wait 20 s again for every test
            pytest.fail("pushd failed to start earlier in this session with the same "
                        "configuration:\n" + _STARTUP_FAILURES[key], pytrace=False)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")}
        child_env.update(env or {})
        last_err = ""
        fixed_port = port
        for attempt in range(3):  # the free port can be stolen between probe and bind
            port = fixed_port or free_port()
            argv = [*(prefix or []), binary, "serve", "--listen", f"127.0.0.1:{port}", *BACKENDS[backend],
                    *(args or [])]
            if os.environ.get("PUSHD_E2E_LOG_LEVEL"):
                argv += ["--log-level", os.environ["PUSHD_E2E_LOG_LEVEL"]]
            log_path = tmp_path / f"pushd-{len(started)}-{attempt}.log"
            d = Pushd(argv, child_env, backend, port, log_path)
            try:
                d.wait_healthy(20.0)
            except RuntimeError as e:
                last_err = str(e)
            else:
                started.append(d)
                return d
            d.stop()
            if "in use" not in d.log().lower():
                break
        _STARTUP_FAILURES[key] = last_err
        pytest.fail(last_err, pytrace=False)

    yield start

    crashed = [d for d in started if not d.alive() and not getattr(d, "stopped_by_test", False)]
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for d in started:
        d.stop()
        if failed or d in crashed:
            print(f"--- pushd [{d.backend}] {' '.join(d.argv)} (exit {d.exit_code}) ---")
            print(d.log())
        if d.stop_seconds is not None and d.stop_seconds > 5:
            print(f"note: pushd needed SIGKILL after SIGTERM ({d.stop_seconds:.1f}s)")
    if crashed:
        pytest.fail("pushd died during the test: " + ", ".join(
            f"pid {d.pid} exit {d.exit_code}" for d in crashed), pytrace=False)


@pytest.fixture
def pushd(pushd_factory, request) -> Pushd:
    """One daemon for this test; configure with @pytest.mark.pushd(env=..., args=...)."""
    m = request.node.get_closest_marker("pushd")
    kw = dict(m.kwargs) if m else {}
    return pushd_factory(env=kw.get("env"), args=kw.get("args"))
