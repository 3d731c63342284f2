"""/healthz and the README example (curl publisher + curl -N subscriber)."""
import json
import os
import select
import subprocess
import time

import httpx


def test_healthz_ok(pushd):
    r = httpx.get(pushd.url("/healthz"), timeout=5)
    assert r.status_code == 200
    assert r.text.strip() == "ok"


def _read_until(proc, needle: bytes, timeout: float) -> bytes:
    """Read curl's stdout until `needle` appears (or fail after `timeout`)."""
    out = b""
    end = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while needle not in out:
        left = end - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out += chunk
    return out


def test_readme_example_curl(pushd):
    topic = "news"
    sub = subprocess.Popen(
        ["curl", "-sS", "-N", "--max-time", "15", pushd.url(f"/topics/{topic}")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pre = _read_until(sub, b"retry:", 5)
        assert b"retry:" in pre, f"curl -N saw no retry: preamble, got {pre!r}"
        pub = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", "-d", "hello",
             pushd.url(f"/topics/{topic}")], capture_output=True, timeout=15)
        assert pub.returncode == 0, pub.stderr
        body, _, code = pub.stdout.rpartition(b"\n")
        assert code == b"200", pub.stdout
        doc = json.loads(body)
        assert doc["topic"] == topic
        out = pre + _read_until(sub, b"data: hello\n", 5)
        assert b"data: hello\n" in out, out
        assert f"id: {doc['id']}\n".encode() in out, out
    finally:
        sub.kill()
        sub.wait(5)
