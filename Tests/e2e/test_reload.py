"""SIGHUP reloads the configuration file: a changed limit takes effect while 1,000 SSE
connections stay up and keep receiving; an invalid file keeps the running configuration and
every problem is logged with its key path."""
import asyncio
import signal
import time

import pytest

from e2e_util import AsyncPublisher, AsyncSSE, request_bytes, parse_head
from systemd_util import raise_nofile

N_SUBS = 1000

BASE = "limits:\n  max_event_bytes: {limit}\nsse:\n  heartbeat: 0\n"


async def _publish_status(port: int, size: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes("POST", "/topics/other", b"x" * size, {"Connection": "close"}))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return parse_head(head[:-4])[0]


def _wait_log(pushd, text: str, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while text not in pushd.log(100000):
        assert time.monotonic() < end, f"{text!r} not logged:\n{pushd.log()}"
        time.sleep(0.05)


def test_sighup_reload_keeps_connections(pushd_factory, tmp_path):
    raise_nofile()
    cfg = tmp_path / "pushd.yaml"
    cfg.write_text(BASE.format(limit="1KiB"))
    pushd = pushd_factory(args=["--config", str(cfg)])

    async def run():
        subs = await asyncio.gather(*[AsyncSSE.open(pushd.port, "/topics/reload") for _ in range(N_SUBS)])
        async with AsyncPublisher(pushd.port) as pub:
            await pub.publish("reload", b"before")
        assert await _publish_status(pushd.port, 600) == 200

        cfg.write_text(BASE.format(limit="500B"))
        pushd.proc.send_signal(signal.SIGHUP)
        _wait_log(pushd, "configuration reloaded")
        # The log names what changed, and only that.
        assert "configuration reloaded: changed limits.max_event_bytes\n" in pushd.log(100000), pushd.log()[-2000:]
        await asyncio.sleep(0.3)  # every loop picks the new snapshot up on its next tick
        assert await _publish_status(pushd.port, 600) == 413
        assert await _publish_status(pushd.port, 400) == 200

        # An invalid file: refused, logged with its key path, the running limit stays.
        cfg.write_text(BASE.format(limit="lots") + "bogus_key: 1\n")
        pushd.proc.send_signal(signal.SIGHUP)
        _wait_log(pushd, "configuration reload refused")
        log = pushd.log(100000)
        assert "limits.max_event_bytes" in log and "bogus_key" in log, log[-3000:]
        assert await _publish_status(pushd.port, 600) == 413
        assert await _publish_status(pushd.port, 400) == 200

        # A key that needs a restart: warned about, kept, and not listed as changed — now and on
        # the next reload with the same file.
        cfg.write_text(BASE.format(limit="500B") + "loop:\n  ring_entries: 1024\n")
        for n in (1, 2):
            pushd.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while pushd.log(100000).count("configuration reloaded") < 1 + n:
                assert time.monotonic() < deadline, pushd.log()[-2000:]
                time.sleep(0.05)
        log = pushd.log(100000)
        assert log.count("a new value of loop.* takes effect only after a restart") == 2, log[-2000:]
        assert log.count("configuration reloaded: no value changed") == 2, log[-2000:]

        async with AsyncPublisher(pushd.port) as pub:
            await pub.publish("reload", b"after")
        for s in subs:
            await s.wait_events(2, 15)
            assert not s.eof
            assert [e.data for e in s.events] == ["before", "after"]
        for s in subs:
            await s.close()

    asyncio.run(run())
