#!/usr/bin/env python3
"""TLS cost per delivery (issue #6 item 5; a measurement, not a test: pytest does not collect it).

Runs pushd twice — plaintext, then TLS (a throwaway CA made with the openssl CLI) — with one epoll
loop; opens S SSE subscribers on one topic, publishes E events of SIZE bytes in batches of --batch
(1: one POST per event, so sends hardly coalesce), and waits until every subscriber has every event. Reports pushd's CPU time (utime + stime from
/proc/PID/stat) over the delivery phase divided by S × E deliveries, for both runs, as one JSON line.
The clients run on the same machine, so wall times mean little; CPU time of the pushd process does.
With --idle N it instead opens N idle subscribers (after one event each, so every TLS session has
sent application data) and reports pushd's RSS growth per connection, plaintext vs TLS.
Usage: measure_tls.py [--subscribers S] [--events E] [--size BYTES] [--batch B] [--event-loop epoll]
       measure_tls.py --idle N
"""
import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import pushd_binary  # noqa: E402
from e2e_util import free_port  # noqa: E402
from test_tls import make_ca, make_server_cert  # noqa: E402


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def subscriber(port, ctx, want, ready):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname="127.0.0.1" if ctx else None)
    writer.write(b"GET /topics/m HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    ready()
    seen = 0
    tail = b""  # shorter than the pattern: a match across two reads is counted once
    while seen < want:
        chunk = await reader.read(1 << 20)
        if not chunk:
            raise RuntimeError(f"stream ended after {seen} events")
        seen += (tail + chunk).count(b"\nid: ")
        tail = chunk[-4:]
    writer.close()


def start(binary, loop, tls_dir, extra_env=None):
    """Starts pushd (TLS when `tls_dir` is given) and waits for /healthz.
    Returns (proc, port, ssl context or None, base URL, httpx client)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")}
    env.update(extra_env or {})
    ctx = None
    scheme = "http"
    if tls_dir:
        env["PUSHD_TLS_CERTIFICATE"] = str(tls_dir / "server.pem")
        env["PUSHD_TLS_PRIVATE_KEY"] = str(tls_dir / "server.key")
        ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
        scheme = "https"
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--event-loop", loop,
                             "--workers", "1", "--log-level", "warning"], env=env)
    base = f"{scheme}://127.0.0.1:{port}"
    client = httpx.Client(verify=ctx if ctx else True, timeout=10)
    for _ in range(200):
        try:
            if client.get(base + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    return proc, port, ctx, base, client


def run(binary, loop, tls_dir, subs, events, size, batch):
    proc, port, ctx, base, client = start(binary, loop, tls_dir, {
        "PUSHD_SUBSCRIBER_QUEUE_EVENTS": str(events + 1), "PUSHD_SUBSCRIBER_QUEUE_BYTES": "1GiB"})
    try:
        async def main():
            opened = 0

            def ready():
                nonlocal opened
                opened += 1
            tasks = [asyncio.create_task(subscriber(port, ctx, events, ready)) for _ in range(subs)]
            while opened < subs:
                await asyncio.sleep(0.05)
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.monotonic()
            data = "x" * size

            def publish():
                for _ in range(0, events, batch):
                    if batch == 1:
                        client.post(base + "/topics/m", content=data.encode())
                        continue
                    body = {"events": [{"topic": "m", "data": data} for _ in range(batch)]}
                    client.post(base + "/publish", content=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
            await asyncio.to_thread(publish)
            await asyncio.gather(*tasks)
            return cpu_seconds(proc.pid) - cpu0, time.monotonic() - t0

        cpu, wall = asyncio.run(main())
        return {"cpu_s": round(cpu, 3), "wall_s": round(wall, 2),
                "cpu_us_per_delivery": round(cpu / (subs * events) * 1e6, 3)}
    finally:
        proc.terminate()
        proc.wait(10)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle(binary, loop, tls_dir, n):
    proc, port, ctx, base, client = start(binary, loop, tls_dir)
    try:
        rss0 = rss_kb(proc.pid)

        async def open_all():
            conns = []
            for _ in range(n):
                r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                     server_hostname="127.0.0.1" if ctx else None)
                w.write(b"GET /topics/m HTTP/1.1\r\nHost: x\r\n\r\n")
                conns.append((r, w))
            for r, w in conns:
                await w.drain()
                await r.readuntil(b"\r\n\r\n")
            await asyncio.to_thread(lambda: client.post(base + "/topics/m", content=b"hello"))
            for r, _ in conns:
                await r.readuntil(b"hello\n\n")
            await asyncio.sleep(1)
            rss1 = rss_kb(proc.pid)
            for _, w in conns:
                w.close()
            return rss1

        rss1 = asyncio.run(open_all())
        return {"rss_kb_before": rss0, "rss_kb_after": rss1, "kb_per_connection": round((rss1 - rss0) / n, 2)}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--event-loop", default="epoll")
    ap.add_argument("--batch", type=int, default=50, help="events per POST /publish (1: one POST each)")
    ap.add_argument("--idle", type=int, default=0, help="measure memory of N idle subscribers instead")
    a = ap.parse_args()
    binary = pushd_binary()
    if a.idle:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            make_ca(d, "ca")
            make_server_cert(d, "ca", "server")
            plain = idle(binary, a.event_loop, None, a.idle)
            tls = idle(binary, a.event_loop, d, a.idle)
        print(json.dumps({"idle_subscribers": a.idle, "event_loop": a.event_loop, "plain": plain, "tls": tls,
                          "tls_extra_kb_per_connection": round(tls["kb_per_connection"] - plain["kb_per_connection"], 2)}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_ca(d, "ca")
        make_server_cert(d, "ca", "server")
        plain = run(binary, a.event_loop, None, a.subscribers, a.events, a.size, a.batch)
        tls = run(binary, a.event_loop, d, a.subscribers, a.events, a.size, a.batch)
    print(json.dumps({"subscribers": a.subscribers, "events": a.events, "size": a.size, "batch": a.batch,
                      "event_loop": a.event_loop, "plain": plain, "tls": tls,
                      "tls_extra_us_per_delivery": round(tls["cpu_us_per_delivery"] - plain["cpu_us_per_delivery"], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
