"""TLS termination (issue #6 item 5): https, wss, TLS 1.2 minimum, ALPN http/1.1, plaintext on the
TLS port, slow and many TLS subscribers, certificate reload on SIGHUP. Every test runs on each
backend (io_uring, epoll, 2 workers) through the `backend` fixture.

Certificates: a throwaway CA and a server certificate for 127.0.0.1/localhost, made with the
`openssl` CLI in the test's tmp_path.
"""
from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import BACKENDS, Pushd, pushd_binary
from e2e_util import SSEParser, free_port

TOPIC = "tls"


# ---------------------------------------------------------------------------------------------
# Certificates


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(d: Path, name: str) -> None:
    """`<name>.pem` / `<name>.key`: a self-signed P-256 CA."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN=pushd test {name}", cwd=d)


def make_server_cert(d: Path, ca: str, out: str) -> None:
    """`<out>.pem` / `<out>.key`: a server certificate for 127.0.0.1 and localhost signed by `ca`."""
    (d / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{out}.key", "-out", f"{out}.csr", "-subj", "/CN=localhost", cwd=d)
    _openssl("x509", "-req", "-in", f"{out}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{out}.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


@pytest.fixture
def certs(tmp_path) -> Path:
    d = tmp_path / "certs"
    d.mkdir()
    make_ca(d, "ca")
    make_server_cert(d, "ca", "server")
    return d


# ---------------------------------------------------------------------------------------------
# A pushd serving TLS


class TLSPushd(Pushd):
    def __init__(self, *a, cafile: Path, **kw):
        self.cafile = cafile
        super().__init__(*a, **kw)
        self.base_url = f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(verify=self.ssl_context(), **kw)

    def publish(self, data: str, topic: str = TOPIC) -> str:
        with self.client(timeout=5.0) as c:
            r = c.post(self.url(f"/topics/{topic}"), content=data.encode())
        assert r.status_code in (200, 201, 202), r.text
        return r.json()["id"]


@pytest.fixture
def tls_factory(backend, tmp_path, certs, request):
    started: list[TLSPushd] = []

    def start(env: dict[str, str] | None = None) -> TLSPushd:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")}
        child_env.update({
            "PUSHD_TLS_CERTIFICATE": str(certs / "server.pem"),
            "PUSHD_TLS_PRIVATE_KEY": str(certs / "server.key"),
        })
        child_env.update(env or {})
        port = free_port()
        argv = [pushd_binary(), "serve", "--listen", f"127.0.0.1:{port}", *BACKENDS[backend]]
        if os.environ.get("PUSHD_E2E_LOG_LEVEL"):
            argv += ["--log-level", os.environ["PUSHD_E2E_LOG_LEVEL"]]
        d = TLSPushd(argv, child_env, backend, port, tmp_path / f"pushd-tls-{len(started)}.log",
                     cafile=certs / "ca.pem")
        started.append(d)
        d.wait_healthy()
        return d

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    crashed = [d for d in started if not d.alive()]
    for d in started:
        d.stop()
        if failed or d in crashed:
            print(f"--- pushd [{d.backend}] {' '.join(d.argv)} (exit {d.exit_code}) ---")
            print(d.log())
    if crashed:
        pytest.fail("pushd died during the test", pytrace=False)


# ---------------------------------------------------------------------------------------------
# Raw TLS SSE subscribers


async def open_tls_subscriber(d: TLSPushd, topic: str = TOPIC, rcvbuf: int | None = None):
    sock = None
    if rcvbuf is not None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (d.host, d.port))
        reader, writer = await asyncio.open_connection(sock=sock, ssl=d.ssl_context(),
                                                       server_hostname="127.0.0.1")
    else:
        reader, writer = await asyncio.open_connection(d.host, d.port, ssl=d.ssl_context(),
                                                       server_hostname="127.0.0.1")
    writer.write(f"GET /topics/{topic} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200"), head
    return reader, writer


async def read_events(reader, parser: SSEParser, want: int, timeout: float) -> list:
    got = []
    end = time.monotonic() + timeout
    while len(got) < want:
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except asyncio.TimeoutError:
            break
        if not chunk:
            break
        got += parser.feed(chunk)
    return got


# ---------------------------------------------------------------------------------------------
# Tests


def test_curl_receives_sse_over_https(tls_factory, certs):
    d = tls_factory()
    proc = subprocess.Popen(
        ["curl", "-sS", "-N", "-v", "--max-time", "20", "--cacert", str(certs / "ca.pem"),
         d.url(f"/topics/{TOPIC}")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Wait for the stream's `retry:` prelude: the subscription is live.
        buf = b""
        end = time.monotonic() + 10
        while b"retry:" not in buf and time.monotonic() < end:
            if select.select([proc.stdout], [], [], 0.2)[0]:
                buf += os.read(proc.stdout.fileno(), 65536)
        assert b"retry:" in buf, buf
        ids = [d.publish(f"event {i}") for i in range(5)]
        parser = SSEParser()
        events = parser.feed(buf)
        while len(events) < 5 and time.monotonic() < end + 10:
            if select.select([proc.stdout], [], [], 0.2)[0]:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                events += parser.feed(chunk)
        assert [e.data for e in events] == [f"event {i}" for i in range(5)]
        assert [e.id for e in events] == ids
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    trace = err.decode(errors="replace")
    assert "SSL certificate verify ok" in trace or "SSL certificate verified" in trace, trace
    assert "ALPN" in trace and "http/1.1" in trace, trace


def test_https_publish_and_health(tls_factory):
    d = tls_factory()
    with d.client(timeout=5.0) as c:
        assert c.get(d.url("/healthz")).status_code == 200
        # Keep-alive: several requests on one TLS connection.
        for i in range(20):
            r = c.post(d.url(f"/topics/{TOPIC}"), content=f"x{i}".encode())
            assert r.status_code in (200, 201, 202)
        # A body larger than one TLS record (16 KiB) and than one receive buffer.
        big = "y" * 200_000
        r = c.post(d.url(f"/topics/{TOPIC}"), content=big.encode())
        assert r.status_code in (200, 201, 202), r.text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ssl.TLSVersion.TLSv1_1, on purpose
def test_tls11_refused_tls12_and_13_accepted(tls_factory):
    d = tls_factory()
    target = f"127.0.0.1:{d.port}"

    def s_client(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["openssl", "s_client", "-connect", target, "-CAfile", str(d.cafile), *args],
            input=b"", capture_output=True, timeout=20)

    # SECLEVEL=0 lets the client offer TLS 1.1 at all: the refusal must come from pushd.
    old = s_client("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    out = (old.stdout + old.stderr).decode(errors="replace")
    assert old.returncode != 0, out
    assert "alert protocol version" in out or "unsupported protocol" in out, out
    assert "Cipher is (NONE)" in out or "Cipher    : 0000" in out, out  # no session

    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        ok = s_client(flag, "-alpn", "h2,http/1.1")
        text = ok.stdout.decode(errors="replace")
        assert ok.returncode == 0, text + ok.stderr.decode(errors="replace")
        assert f"Protocol  : {name}" in text or f"New, {name}" in text, text
        assert "ALPN protocol: http/1.1" in text, text
        assert "Verify return code: 0 (ok)" in text, text

    # A client that only speaks h2 is refused (RFC 7301 §3.2: no_application_protocol).
    h2 = s_client("-alpn", "h2")
    h2out = (h2.stdout + h2.stderr).decode(errors="replace")
    assert h2.returncode != 0 and "no application protocol" in h2out, h2out

    # The same refusal through Python's ssl module.
    ctx = ssl.create_default_context(cafile=str(d.cafile))
    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection((d.host, d.port), timeout=5) as s:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(s, server_hostname="127.0.0.1").close()
    assert d.alive()


def test_tls12_renegotiation_refused(tls_factory):
    """TLS 1.2 renegotiation is off (TLS 1.3 has none): a client asking for it gets the
    no_renegotiation alert, and pushd goes on serving."""
    d = tls_factory()
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}", "-tls1_2",
                          "-CAfile", str(d.cafile)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1)
    p.stdin.write(b"R\n")  # s_client: renegotiate
    p.stdin.flush()
    time.sleep(1)
    out = p.communicate(timeout=20)[0].decode(errors="replace")
    assert "RENEGOTIATING" in out and "no renegotiation" in out, out
    assert d.alive()
    with d.client(timeout=5.0) as c:
        assert c.get(d.url("/healthz")).status_code == 200


def test_plaintext_http_on_tls_port_is_answered_and_closed(tls_factory):
    d = tls_factory()
    with socket.create_connection((d.host, d.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert b"Connection: close" in data and b"HTTPS" in data
    # Garbage that is neither HTTP nor a valid TLS record: closed, no crash.
    for junk in (b"\x16\x03\x01\x00\x05hello", b"\x00" * 64, b"\x16\x03\x03\xff\xff" + b"a" * 1000):
        with socket.create_connection((d.host, d.port), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
    assert d.alive()
    with d.client(timeout=5.0) as c:
        assert c.get(d.url("/healthz")).status_code == 200


def test_stalled_handshake_is_closed_by_header_timeout(tls_factory):
    d = tls_factory(env={"PUSHD_LIMITS_HEADER_TIMEOUT": "1s"})
    with socket.create_connection((d.host, d.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
        t0 = time.monotonic()
        while s.recv(4096):
            pass
        waited = time.monotonic() - t0
    assert waited < 5, waited
    # A silent connection too.
    with socket.create_connection((d.host, d.port), timeout=10) as s:
        t0 = time.monotonic()
        while s.recv(4096):
            pass
        assert time.monotonic() - t0 < 5


def _tls_send_while_reading(d: TLSPushd, payload: bytes, timeout: float = 10) -> tuple[bytes, str]:
    """Sends `payload` on a new TLS connection while reading, in one thread (non-blocking socket
    and select: an SSL object must not be used from two threads at once). Returns (bytes read,
    how reading ended: "eof" (close_notify or FIN) | "reset …" | "timeout"). A write that fails
    stops the sending; reading goes on."""
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    s = d.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
    s.setblocking(False)
    view, sent, data = memoryview(payload), 0, b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            writable = [s] if sent < len(payload) else []
            r, w, _ = select.select([s], writable, [], 0.2)
            if r or s.pending():
                try:
                    chunk = s.recv(65536)
                except ssl.SSLWantReadError:
                    chunk = None
                except (ConnectionResetError, ssl.SSLError) as e:
                    return data, f"reset ({type(e).__name__}: {e})"
                if chunk == b"":
                    return data, "eof"
                data += chunk or b""
            if w:
                try:
                    sent += s.send(view[sent:sent + 65536])
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    sent = len(payload)
        return data, "timeout"
    finally:
        s.close()


def test_413_over_https_is_read_by_a_client_still_sending(tls_factory):
    """Lingering close over TLS (Linger.swift, docs/SECURITY.md row 62): a client sends a 10 MB
    body while reading, to a topic whose event limit is far smaller. pushd answers 413 from the
    Content-Length before the body; the client reads the whole JSON answer and a clean end
    (close_notify, FIN), never a reset, although most of its body was still arriving. (Over TLS
    the close_notify marks the end before any reset could, so this checks that the lingering
    path writes the answer and close_notify intact; test_linger.py shows the FIN-versus-RST
    difference on plaintext.)"""
    d = tls_factory()
    head = b"POST /topics/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" % TOPIC.encode()
    data, ended = _tls_send_while_reading(d, head + b"a" * 10_000_000)
    answer, _, body = data.partition(b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 "), data[:300]
    assert json.loads(body)["error"] == "payload_too_large", body
    assert ended == "eof", f"expected a clean end after the 413, reading ended with {ended}"
    assert d.alive()


def test_clean_close_notify_after_connection_close(tls_factory):
    """A `Connection: close` response ends with close_notify (RFC 8446 §6.1), so the client sees a
    clean TLS end of stream rather than a truncation."""
    d = tls_factory()
    ctx = d.ssl_context()
    with socket.create_connection((d.host, d.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)  # raises SSLEOFError on a close without close_notify
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data


def read_to_clean_end(d: TLSPushd, request: bytes, timeout: float = 10) -> bytes:
    """Sends `request` over TLS and reads until the server ends the connection; fails with
    SSLEOFError unless the end came with close_notify."""
    with socket.create_connection((d.host, d.port), timeout=timeout) as raw:
        with d.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1",
                                         suppress_ragged_eofs=False) as s:
            if request:
                s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data
                data += chunk


def test_close_notify_when_a_stream_ends_or_an_idle_connection_times_out(tls_factory):
    d = tls_factory(env={"PUSHD_SSE_MAX_STREAM_AGE": "1s", "PUSHD_LIMITS_IDLE_TIMEOUT": "1s"})
    t0 = time.monotonic()
    data = read_to_clean_end(d, f"GET /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 200") and b"retry:" in data, data
    assert time.monotonic() - t0 < 5
    # Keep-alive: one answered request, then silence until the idle timeout.
    data = read_to_clean_end(d, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200"), data


def test_many_tls_subscribers_get_every_event(tls_factory):
    d = tls_factory()
    n_subs, n_events = 200, 50

    async def run():
        subs = await asyncio.gather(*(open_tls_subscriber(d) for _ in range(n_subs)))
        ids = []
        with d.client(timeout=5.0) as c:
            for i in range(n_events):
                r = c.post(d.url(f"/topics/{TOPIC}"), content=f"e{i} ".encode() * 20)
                ids.append(r.json()["id"])
        results = await asyncio.gather(*(read_events(r, SSEParser(), n_events, 30) for r, _ in subs))
        for _, w in subs:
            w.close()
        return ids, results

    ids, results = asyncio.run(run())
    for got in results:
        assert [e.id for e in got] == ids
    assert d.alive()


@pytest.mark.parametrize("policy", ["disconnect", "drop"])
def test_slow_tls_subscriber_obeys_slow_policy(tls_factory, policy):
    d = tls_factory(env={
        # Room for a healthy reader that is a batch (50 KB) behind; the stuck one overflows it
        # once its socket buffers are full.
        "PUSHD_SUBSCRIBER_QUEUE_EVENTS": "2048",
        "PUSHD_SUBSCRIBER_QUEUE_BYTES": "512KiB",
        "PUSHD_SUBSCRIBER_SLOW_POLICY": policy,
    })
    n_events = 8000
    payload = "z" * 1000
    # The stuck subscriber: tiny receive buffer, completes the handshake and the request, then
    # never reads again.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect((d.host, d.port))
    stuck = d.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
    stuck.sendall(f"GET /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert stuck.recv(1024).startswith(b"HTTP/1.1 200")

    async def run():
        healthy_r, healthy_w = await open_tls_subscriber(d)
        parser = SSEParser()
        got = []
        with d.client(timeout=10.0) as c:
            for start in range(0, n_events, 50):
                batch = {"events": [{"topic": TOPIC, "data": payload} for _ in range(50)]}
                r = c.post(d.url("/publish"), content=json.dumps(batch).encode(),
                           headers={"Content-Type": "application/json"})
                assert r.status_code in (200, 201, 202), r.text
                # The healthy reader keeps up.
                got += await read_events(healthy_r, parser, start + 50 - len(got), 10)
        got += await read_events(healthy_r, parser, n_events - len(got), 20)
        healthy_w.close()
        return got

    got = asyncio.run(run())
    stuck.close()
    assert len(got) == n_events
    log = d.log(200_000)
    if policy == "disconnect":
        assert "slow subscriber disconnected" in log, log[-3000:]
    else:
        assert "slow subscriber skipped" in log, log[-3000:]
    assert d.alive()


def test_certificate_reload_on_sighup(tls_factory, certs):
    d = tls_factory()
    # An open stream before the reload.
    old_ctx = d.ssl_context()
    with socket.create_connection((d.host, d.port), timeout=5) as raw:
        s = old_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(f"GET /topics/{TOPIC} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        # Renew: a certificate from another CA, written over the same files.
        make_ca(certs, "ca2")
        make_server_cert(certs, "ca2", "server")
        d.proc.send_signal(signal.SIGHUP)
        new_ctx = ssl.create_default_context(cafile=str(certs / "ca2.pem"))
        end = time.monotonic() + 10
        while True:
            try:
                with httpx.Client(verify=new_ctx, timeout=2) as c:
                    assert c.get(d.url("/healthz")).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < end, d.log()
                time.sleep(0.1)
        # The old CA no longer verifies new connections.
        with pytest.raises(httpx.ConnectError):
            with httpx.Client(verify=old_ctx, timeout=2) as c:
                c.get(d.url("/healthz"))
        # The stream opened before the reload still works.
        with httpx.Client(verify=new_ctx, timeout=5) as c:
            assert c.post(d.url(f"/topics/{TOPIC}"), content=b"after reload").status_code in (200, 201, 202)
        buf = b""
        s.settimeout(5)
        while b"after reload" not in buf:
            chunk = s.recv(4096)
            assert chunk, buf
            buf += chunk
        s.close()
    assert "TLS certificate reloaded" in d.log()


def test_reload_with_a_broken_key_keeps_the_running_certificate(tls_factory, certs):
    d = tls_factory()
    (certs / "server.key").write_text("not a key\n")
    d.proc.send_signal(signal.SIGHUP)
    end = time.monotonic() + 10
    while "reload refused" not in d.log() and time.monotonic() < end:
        time.sleep(0.1)
    log = d.log()
    assert "reload refused" in log and "tls.private_key" in log, log
    with d.client(timeout=5.0) as c:  # still the original certificate, still serving
        assert c.get(d.url("/healthz")).status_code == 200


def test_bad_certificate_is_a_config_error(backend, tmp_path, certs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")}
    env.update({"PUSHD_TLS_CERTIFICATE": str(tmp_path / "missing.pem"),
                "PUSHD_TLS_PRIVATE_KEY": str(certs / "server.key")})
    r = subprocess.run([pushd_binary(), "serve", "--listen", f"127.0.0.1:{free_port()}",
                        *BACKENDS[backend]], env=env, capture_output=True, timeout=20)
    assert r.returncode == 78, r
    err = r.stderr.decode()
    assert "tls.certificate" in err and "missing.pem" in err, err


def websocket_supported(d: TLSPushd) -> int:
    """The status a WebSocket upgrade gets over TLS (101 when the transport is in the build)."""
    with socket.create_connection((d.host, d.port), timeout=5) as raw:
        with d.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(f"GET /topics/{TOPIC} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            return int(s.recv(4096).split(b" ", 2)[1])


def test_websocket_over_wss(tls_factory):
    from websockets.sync.client import connect
    d = tls_factory()
    status = websocket_supported(d)
    if status != 101:
        pytest.skip(f"WebSocket transport not in this build (an upgrade is answered {status}); "
                    "the TLS layer sits below every transport")
    with connect(f"wss://127.0.0.1:{d.port}/topics/{TOPIC}", ssl=d.ssl_context(), open_timeout=5) as ws:
        time.sleep(0.2)
        d.publish("over wss")
        deadline = time.monotonic() + 10
        while True:
            msg = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            text = msg if isinstance(msg, str) else msg.decode()
            if "over wss" in text:
                break
