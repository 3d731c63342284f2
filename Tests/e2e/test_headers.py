"""SSE response headers are flushed at once (before any event), `retry:` first; heartbeats."""
import asyncio
import subprocess
import time

import pytest

from e2e_util import AsyncSSE

SSE_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-store",
    "x-accel-buffering": "no",
}


def _check_headers(headers: dict[str, str]) -> None:
    assert headers.get("content-type", "").split(";")[0].strip() == "text/event-stream", headers
    assert "no-store" in headers.get("cache-control", ""), headers
    assert headers.get("x-accel-buffering", "").lower() == "no", headers
    assert "content-length" not in headers, "an SSE stream has no Content-Length"


@pytest.mark.parametrize("path", ["/topics/quiet", "/subscribe?topic=quiet&topic=still"])
def test_headers_and_retry_within_1s_on_idle_topic(pushd, path):
    async def run():
        t0 = time.monotonic()
        s = await AsyncSSE.open(pushd.port, path, timeout=1.0)  # waits for head + retry:
        elapsed = time.monotonic() - t0
        try:
            assert s.status == 200
            _check_headers(s.headers)
            assert elapsed < 1.0, f"headers + retry: took {elapsed:.2f}s"
            assert s.parser.retry is not None and s.parser.retry > 0, "retry: <ms> missing"
            assert s.events == []
        finally:
            await s.close()

    asyncio.run(run())


def test_curl_sees_headers_and_retry(pushd):
    t0 = time.monotonic()
    p = subprocess.run(["curl", "-sS", "-N", "-i", "--max-time", "1.5", pushd.url("/topics/idle")],
                       capture_output=True, timeout=10)
    assert p.returncode == 28, f"curl should time out on an open stream: rc={p.returncode} {p.stderr!r}"
    assert time.monotonic() - t0 < 5
    out = p.stdout.decode("utf-8", "replace")
    head, sep, body = out.partition("\r\n\r\n")
    assert sep, f"no complete response head from curl: {out!r}"
    lines = head.split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200"), lines[0]
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    _check_headers(hdrs)
    first = [ln for ln in body.splitlines() if ln and not ln.startswith(":")]
    assert first and first[0].startswith("retry:"), f"first field should be retry:, got {body!r}"
    assert first[0].split(":", 1)[1].strip().isdigit(), first[0]


@pytest.mark.pushd(env={"PUSHD_SSE_HEARTBEAT": "1s"})
def test_heartbeat_comment_on_idle_stream(pushd):
    async def run():
        s = await AsyncSSE.open(pushd.port, "/topics/hb", keep_raw=True)
        try:
            # comments from the connect preamble do not count: wait for new ones
            base = len(s.parser.comments)
            t0 = time.monotonic()
            await s.wait_for(lambda s: len(s.parser.comments) > base, 2.5, "a heartbeat comment")
            t1 = time.monotonic()
            await s.wait_for(lambda s: len(s.parser.comments) > base + 1, 2.5, "a second heartbeat")
            t2 = time.monotonic()
            print(f"[{pushd.backend}] heartbeats after {t1 - t0:.2f}s and {t2 - t0:.2f}s")
            assert s.events == []
            assert t2 - t1 > 0.5, "heartbeats should be spaced by sse.heartbeat (1s)"
        finally:
            await s.close()

    asyncio.run(run())
