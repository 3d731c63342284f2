"""Load-adaptive write coalescing (`subscriber.busy_coalesce_delay`, docs/OPERATIONS.md "Heavy
fan-out"): a loop that is saturated holds streams back up to the delay so each subscriber gets
several events per send, and sends at once again when the load is gone. Driven by pushd-bench
(flat-out publishing to 2,000 SSE subscribers on 100 topics, every delivery checked for loss,
duplicates and order) and a light load that must never count as saturation."""
import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import pushd_binary
from e2e_util import AsyncSSE


def _bench_binary() -> str:
    path = Path(pushd_binary()).with_name("pushd-bench")
    if not path.exists():
        pytest.skip(f"{path} not built")
    return str(path)


def _saturated_loops(pushd) -> dict[str, float]:
    text = httpx.get(pushd.url("/metrics"), timeout=5).text
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^pushd_loop_saturated\{loop="(\d+)"\} (\S+)$', text, re.M)}


def _flat_out_run(pushd) -> tuple[dict, set[str]]:
    """One flat-out pushd-bench run (2,000 SSE subscribers, 100 topics, 400 events each); returns
    its JSON result and the loops whose saturation gauge read 1 at some point during the run."""
    bench = subprocess.Popen(
        [_bench_binary(), "--port", str(pushd.port), "-n", "2000", "-t", "100", "-m", "400", "-s", "64",
         "-P", "16", "--server-pid", str(pushd.pid), "--timeout", "120", "--no-table", "--progress", "off",
         "--src-addrs", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = set()
    while bench.poll() is None:
        seen |= {loop for loop, v in _saturated_loops(pushd).items() if v == 1}
        time.sleep(0.1)
    out, err = bench.communicate()
    assert bench.returncode == 0, f"pushd-bench exit {bench.returncode}\n{err[-3000:]}"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["missing"] == 0 and result["deliveries"] == 2000 * 400, result
    assert result["duplicates"] == 0 and result["out_of_order"] == 0, result
    return result, seen


def test_a_saturated_loop_coalesces_and_loses_nothing(pushd):
    # A single loop runs flat out against one pushd-bench process on this 2-core machine: it is
    # saturated unless another tenant takes its core, so a run without saturation is repeated
    # (at most 3 runs). With --workers 2 the load generator holds one core and the two loops share
    # the other, each running about a third of the time (CI measured 2.39 s of server CPU in 3.4 s):
    # neither is saturated, which is the right answer, so that backend checks no loss and a
    # consistent gauge and log, and asserts saturation only if it happened.
    single_loop = pushd.backend != "workers2"
    runs = []
    seen: set[str] = set()
    for _ in range(3 if single_loop else 1):
        result, seen = _flat_out_run(pushd)
        runs.append(result)
        if seen or not single_loop:
            break
    log = pushd.log(200_000)
    if single_loop:
        summary = [(r["server_cpu_s"], r["elapsed_s"], r["host_busy_cpus"]) for r in runs]
        assert seen, f"no loop was ever saturated in {len(runs)} runs (server CPU s, elapsed s, busy CPUs): " \
                     f"{summary}\n{log[-2000:]}"
    if seen:
        assert re.search(r"loop \d+ saturated \(busy \d+% of the time, running \d+%\): holding sends up to 10 ms", log), log[-2000:]
    # Idle again: every loop goes back to sending at once within 4 windows (2 s) and a tick.
    deadline = time.monotonic() + 10
    while any(v == 1 for v in _saturated_loops(pushd).values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(v == 1 for v in _saturated_loops(pushd).values())
    if seen:
        assert re.search(r"loop \d+ no longer saturated \(busy \d+% of the time\): sending at once", pushd.log(200_000))
    result = runs[-1]
    print(f"pushd-bench: {result['deliveries_per_s']} deliveries/s, "
          f"{result['cpu_per_delivery_us']} us server CPU per delivery, p99 {result['p99_us']} us, "
          f"saturated loops {sorted(seen)}")


@pytest.mark.pushd(env={"PUSHD_SUBSCRIBER_BUSY_COALESCE_DELAY": "0"})
def test_busy_coalescing_off_still_reports_saturation(pushd):
    bench = subprocess.run(
        [_bench_binary(), "--port", str(pushd.port), "-n", "2000", "-t", "100", "-m", "400", "-s", "64",
         "-P", "16", "--timeout", "120", "--no-table", "--progress", "off", "--src-addrs", "0"],
        capture_output=True, text=True, timeout=150)
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert json.loads(bench.stdout.strip().splitlines()[-1])["missing"] == 0
    log = pushd.log(200_000)
    assert "holding sends" not in log, "busy_coalesce_delay 0 must never hold sends"


def test_a_light_load_is_not_saturation(pushd):
    async def run():
        subs = [await AsyncSSE.open(pushd.port, "/topics/light") for _ in range(50)]
        try:
            async with httpx.AsyncClient(timeout=10) as c:
                for i in range(40):  # 20 events/s for 2 s
                    r = await c.post(pushd.url("/topics/light"), content=f"e{i}".encode())
                    assert r.status_code == 200
                    await asyncio.sleep(0.05)
            for s in subs:
                await s.wait_for(lambda s: len(s.events) >= 40, 5, "all 40 events")
                assert [e.data for e in s.events] == [f"e{i}" for i in range(40)]
        finally:
            for s in subs:
                await s.close()

    asyncio.run(run())
    assert not any(v == 1 for v in _saturated_loops(pushd).values())
    assert "saturated" not in pushd.log(200_000)
