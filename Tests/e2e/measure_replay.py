#!/usr/bin/env python3
"""Replay figures for issue #3 (a measurement, not a test; pytest does not collect this file).

Starts pushd (PUSHD_BIN, else .build/release/pushd) with a large ring, fills one topic with N events
(POST /publish batches when available, else single POSTs), then:
  - memory per retained event: (RSS after filling − RSS before) / N
  - replay speed: one client reconnects with the first event's id as Last-Event-ID and reads the
    N−1 replayed events as fast as it can; events/s from sending the request to the last byte.
Prints one JSON line.   Usage: measure_replay.py [--events N] [--size BYTES] [--event-loop epoll]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import pushd_binary  # noqa: E402
from e2e_util import SyncConn, free_port, request_bytes  # noqa: E402


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=100, help="data bytes per event")
    ap.add_argument("--event-loop", default="io_uring")
    a = ap.parse_args()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")}
    env.update({"PUSHD_REPLAY_EVENTS": str(a.events), "PUSHD_REPLAY_MAX_BYTES": "1GiB",
                "PUSHD_REPLAY_MAX_AGE": "1h"})
    proc = subprocess.Popen([pushd_binary(), "serve", "--listen", f"127.0.0.1:{port}",
                             "--event-loop", a.event_loop, "--workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                with SyncConn(port, timeout=1) as c:
                    c.send(request_bytes("GET", "/healthz"))
                    if c.read_response().status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        topic = "measure/replay"
        rss0 = rss_kb(proc.pid)
        ids: list[str] = []
        t0 = time.monotonic()
        mode = "batch"
        with SyncConn(port, timeout=30) as c:
            i = 0
            while i < a.events:
                n = min(500, a.events - i)
                datas = [f"{i + k:08d}".ljust(a.size, "x") for k in range(n)]
                if mode == "batch":
                    body = json.dumps({"events": [{"topic": topic, "data": d} for d in datas]})
                    c.send(request_bytes("POST", "/publish", body.encode(),
                                         {"Content-Type": "application/json"}))
                    r = c.read_response()
                    if r.status == 404 and not ids:
                        mode = "single"
                        continue
                    assert r.status == 200, r.body[:200]
                    ids += [e["id"] for e in r.json()["events"]]
                else:
                    for d in datas:
                        c.send(request_bytes("POST", f"/topics/{topic}", d.encode()))
                        r = c.read_response()
                        assert r.status == 200, r.body[:200]
                        ids.append(r.json()["id"])
                i += n
        t_fill = time.monotonic() - t0
        time.sleep(0.5)
        rss1 = rss_kb(proc.pid)

        # replay: everything after the first event
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        last = ids[-1].encode()
        t1 = time.monotonic()
        s.sendall(request_bytes("GET", f"/topics/{topic}", None, {"Last-Event-ID": ids[0]}))
        buf = bytearray()
        total = 0
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            buf += chunk
            if len(buf) > 4096:
                tail = bytes(buf[-4096:])
                buf = bytearray(tail)
            if b"id: " + last + b"\n" in buf and bytes(buf).endswith(b"\n\n"):
                break
        t_replay = time.monotonic() - t1
        s.close()
        n_replayed = len(ids) - 1
        print(json.dumps({
            "event_loop": a.event_loop, "events_retained": len(ids), "data_bytes": a.size,
            "fill_mode": mode, "fill_seconds": round(t_fill, 2),
            "rss_before_kb": rss0, "rss_after_fill_kb": rss1,
            "rss_bytes_per_retained_event": round((rss1 - rss0) * 1024 / len(ids), 1),
            "replayed_events": n_replayed, "replay_bytes": total,
            "replay_seconds": round(t_replay, 3),
            "replay_events_per_s": round(n_replayed / t_replay) if t_replay else None,
            "replay_MB_per_s": round(total / t_replay / 1e6, 1) if t_replay else None}))
        return 0
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    sys.exit(main())
