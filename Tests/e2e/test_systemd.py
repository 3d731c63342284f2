"""systemd integration: sd_notify (READY, STATUS, WATCHDOG, RELOADING, STOPPING) on a notify
socket the test owns, the watchdog withheld when a loop stalls, and socket activation."""
import signal
import socket
import time

import httpx

from e2e_util import free_port
from systemd_util import NotifySocket, healthz, spawn


def _stop(proc, timeout=10.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except Exception:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def test_ready_only_once_accepting_then_stopping(backend, tmp_path):
    ns = NotifySocket(tmp_path)
    port = free_port()
    proc = spawn(backend, port, tmp_path / "pushd.log", env={"NOTIFY_SOCKET": ns.path})
    try:
        _, _, ready = ns.wait_for("READY", "1", timeout=20)
        # READY=1 means every loop accepts: the very next request is served.
        assert healthz(port) == 200
        assert ready.get("MAINPID") == str(proc.pid)
        assert "STATUS" in ready
        i, _, _ = ns.wait_for("STATUS", timeout=5, after=1)  # periodic STATUS= with counts
        assert "connections" in ns.messages[i][1]["STATUS"]
        n = len(ns.messages)
        proc.send_signal(signal.SIGTERM)
        ns.wait_for("STOPPING", "1", timeout=5, after=n)
        assert proc.wait(10) == 0
    finally:
        _stop(proc)
        ns.close()
        print((tmp_path / "pushd.log").read_text(errors="replace")[-3000:])


def test_watchdog_period(backend, tmp_path):
    ns = NotifySocket(tmp_path)
    port = free_port()
    # WATCHDOG_USEC=600 ms: pings every 300 ms (half the timeout).
    proc = spawn(backend, port, tmp_path / "pushd.log",
                 env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "600000"})
    try:
        _, t_ready, _ = ns.wait_for("READY", "1", timeout=20)
        ns.collect(2.2)
        pings = ns.times("WATCHDOG", since=t_ready)
        assert 5 <= len(pings) <= 9, pings
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        gaps.sort()
        median = gaps[len(gaps) // 2]
        assert 0.2 <= median <= 0.45, gaps
        assert max(gaps) < 0.6, gaps  # never as late as the timeout itself
    finally:
        assert _stop(proc) == 0
        ns.close()


def test_watchdog_stops_when_a_loop_stalls(backend, tmp_path):
    ns = NotifySocket(tmp_path)
    port = free_port()
    proc = spawn(backend, port, tmp_path / "pushd.log",
                 env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000",
                      "PUSHD_SHUTDOWN_TIMEOUT": "500ms",
                      "TEST_PUSHD_STALL_LOOP_AFTER_S": "1.0"})
    try:
        _, t_ready, _ = ns.wait_for("READY", "1", timeout=20)
        ns.collect(3.0)
        pings = ns.times("WATCHDOG", since=t_ready)
        assert len(pings) >= 2, "pings before the stall"
        # The loop stalls ~1 s after it started; at most one ping period later the pings stop.
        assert pings[-1] - t_ready < 1.6, pings
        assert not ns.times("WATCHDOG", since=t_ready + 1.8), pings
        assert ns.times("STATUS", since=t_ready + 1.8), "STATUS= keeps coming: the process lives"
        log = (tmp_path / "pushd.log").read_text(errors="replace")
        assert "withholding watchdog pings" in log, log[-2000:]
    finally:
        assert _stop(proc) == 0
        ns.close()


def test_reload_notifies_reloading_then_ready(backend, tmp_path):
    ns = NotifySocket(tmp_path)
    port = free_port()
    proc = spawn(backend, port, tmp_path / "pushd.log", env={"NOTIFY_SOCKET": ns.path})
    try:
        ns.wait_for("READY", "1", timeout=20)
        n = len(ns.messages)
        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        proc.send_signal(signal.SIGHUP)
        i, _, reloading = ns.wait_for("RELOADING", "1", timeout=5, after=n)
        usec = int(reloading["MONOTONIC_USEC"])
        assert before * 1e6 - 1000 <= usec <= time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
        ns.wait_for("READY", "1", timeout=5, after=i + 1)
        assert healthz(port) == 200
    finally:
        assert _stop(proc) == 0
        ns.close()


def test_socket_activation(backend, tmp_path):
    ns = NotifySocket(tmp_path)
    port = free_port()
    unused = free_port()
    proc = spawn(backend, port, tmp_path / "pushd.log", env={"NOTIFY_SOCKET": ns.path},
                 args=["--listen", f"127.0.0.1:{unused}"], socket_activate=True)
    try:
        _, _, ready = ns.wait_for("READY", "1", timeout=20)
        assert ready["MAINPID"] == str(proc.pid)
        assert healthz(port) == 200
        with socket.socket() as s:  # the configured address was not opened
            assert s.connect_ex(("127.0.0.1", unused)) != 0
        # Many connections, publish and subscribe: every loop accepts on the passed socket.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            with c.stream("GET", "/topics/activated") as r:
                assert r.status_code == 200
                lines = r.iter_lines()
                assert next(lines).startswith("retry:")
                for i in range(20):
                    with httpx.Client(timeout=5) as p:
                        assert p.post(f"http://127.0.0.1:{port}/topics/activated", content=f"e{i}").status_code == 200
                got = []
                for line in lines:
                    if line.startswith("data:"):
                        got.append(line[5:].strip())
                        if len(got) == 20:
                            break
                assert got == [f"e{i}" for i in range(20)]
        log = (tmp_path / "pushd.log").read_text(errors="replace")
        assert "socket activation" in log
    finally:
        assert _stop(proc) == 0
        ns.close()
