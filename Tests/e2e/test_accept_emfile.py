"""Accept under descriptor exhaustion (issue 6, limits; docs/SECURITY.md row 60): when the process
runs out of file descriptors, accept fails with EMFILE and the connection stays in the kernel's
listen backlog. pushd must pause accepting for `loop.accept_backoff_ms` instead of retrying in a
busy loop, keep serving the connections it has, and accept the waiting ones once descriptors are
free again.

The daemon runs under prlimit(1) with a hard RLIMIT_NOFILE of 64 and an explicit
`limits.max_connections` far above it, so the 503 answer cannot step in before EMFILE does. (The
limit must be set before the daemon starts: io_uring's multishot accept reads it when it is armed.)"""
import asyncio
import os
import shutil
import socket
import time

import httpx
import pytest

from e2e_util import AsyncSSE, SyncConn, request_bytes

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit(1) (util-linux) missing")

NOFILE = 64
EXTRA = 20  # connections that must wait in the backlog (fewer than the descriptors freed later)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` from /proc/PID/stat (proc(5)), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answered(conn: SyncConn, timeout: float) -> bool:
    """True when the /healthz answer arrived on `conn` within `timeout` s."""
    conn.sock.settimeout(timeout)
    try:
        return conn.read_response().status == 200
    except (socket.timeout, TimeoutError):
        return False


def test_emfile_pauses_accept_and_recovers(pushd_factory):
    pushd = pushd_factory(prefix=["prlimit", f"--nofile={NOFILE}:{NOFILE}"],
                          env={"PUSHD_LIMITS_MAX_CONNECTIONS": "10000", "PUSHD_LOOP_ACCEPT_BACKOFF_MS": "100"})
    asyncio.run(_scenario(pushd))


async def _scenario(pushd):
    sub = await AsyncSSE.open(pushd.port, "/topics/emfile")
    conns: list[SyncConn] = []
    # One keep-alive connection for every publish (no expiry: a new connection would wait in the backlog).
    limits = httpx.Limits(max_connections=1, keepalive_expiry=None)
    try:
        async with httpx.AsyncClient(timeout=10, limits=limits) as publisher:
            r = await publisher.post(pushd.url("/topics/emfile"), content=b"before")
            assert r.status_code == 200
            want = [(r.json()["id"], "before")]

            # Every free descriptor and EXTRA more: the first `free` connections are accepted
            # and answered, the rest hit EMFILE and wait in the backlog.
            free = NOFILE - pushd.num_fds()
            assert free > 8, f"only {free} descriptors free under a limit of {NOFILE}"
            for _ in range(free + EXTRA):
                c = SyncConn(pushd.port, timeout=5)
                c.send(request_bytes("GET", "/healthz", None, {"Host": "127.0.0.1"}))
                conns.append(c)
            await asyncio.sleep(0.5)
            answered = [c for c in conns if _answered(c, 0.05)]
            waiting = [c for c in conns if c not in answered]
            assert free - 2 <= len(answered) <= free, f"{len(answered)} answered with {free} descriptors free"
            assert len(waiting) >= EXTRA

            # Backing off, not spinning: over one second the daemon uses little CPU.
            cpu0, t0 = _cpu_seconds(pushd.pid), time.monotonic()
            await asyncio.sleep(1.0)
            busy = (_cpu_seconds(pushd.pid) - cpu0) / (time.monotonic() - t0)
            assert busy < 0.25, f"pushd used {busy:.0%} of a core while accept failed with EMFILE"
            assert not any(_answered(c, 0.01) for c in waiting), "answered beyond the descriptor limit"

            # Established connections are still served: a publish reaches the subscriber.
            r = await publisher.post(pushd.url("/topics/emfile"), content=b"during")
            assert r.status_code == 200
            want.append((r.json()["id"], "during"))
            await sub.wait_for(lambda s: len(s.events) >= 2, 5, "the event published during EMFILE")

            # Free descriptors: every waiting connection is accepted and answered.
            for c in answered:
                c.close()
            conns = waiting
            late = [c for c in waiting if not _answered(c, 5.0)]
            assert not late, f"{len(late)} of {len(waiting)} waiting connections were never answered"

            r = await publisher.post(pushd.url("/topics/emfile"), content=b"after")
            want.append((r.json()["id"], "after"))
            await sub.wait_for(lambda s: len(s.events) >= 3, 5, "the event published after recovery")

            # The operator is told: each pause is counted, and one warning (at most one per 10 s)
            # names the cause and the remedy.
            metrics = (await publisher.get(pushd.url("/metrics"))).text
            paused = [float(line.split()[-1]) for line in metrics.splitlines()
                      if line.startswith("pushd_accept_paused_total")]
            assert paused and paused[0] >= 3, f"pushd_accept_paused_total {paused} after ~1.5 s of EMFILE"
        # One warning per loop whose listener hit EMFILE (each loop has its own SO_REUSEPORT listener).
        loops = 2 if pushd.backend == "workers2" else 1
        assert "limits.max_connections is 10000" in pushd.log(200_000)  # the ceiling in force, stated at start
        warnings = [line for line in pushd.log(200_000).splitlines() if "accept paused" in line]
        assert 1 <= len(warnings) <= loops, warnings
        for w in warnings:
            assert "warning" in w and "accept paused for 100 ms (EMFILE: pushd's file descriptor limit is reached)" in w, warnings
            assert "raise LimitNOFILE= or lower limits.max_connections (now 10000)" in w, warnings
        assert [(e.id, e.data) for e in sub.events] == want
        assert not sub.eof
        assert pushd.alive()
    finally:
        for c in conns:
            c.close()
        await sub.close()
