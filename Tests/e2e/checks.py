"""Assertion helpers shared by the e2e modules: compare a received event stream to the expected one."""
from __future__ import annotations

from collections import Counter


def diff_streams(got: list[tuple[str, str]], want: list[tuple[str, str]]) -> str | None:
    """None if equal; otherwise a short description (missing / duplicated / first divergence)."""
    if got == want:
        return None
    gc, wc = Counter(got), Counter(want)
    missing = [x for x in want if gc[x] < wc[x]]
    dups = [x for x, n in gc.items() if n > wc.get(x, 0)]
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return (f"got {len(got)} events, want {len(want)}; missing {len(missing)} (e.g. {missing[:3]}), "
            f"unexpected/duplicated {len(dups)} (e.g. {dups[:3]}); first divergence at index {first}: "
            f"got {got[first:first + 2]} want {want[first:first + 2]}")


def assert_streams(subs: dict[str, list[tuple[str, str]]], want: list[tuple[str, str]]) -> None:
    bad = {name: d for name, got in subs.items() if (d := diff_streams(got, want)) is not None}
    assert not bad, (f"{len(bad)}/{len(subs)} subscribers got a wrong stream; first: "
                     + "; ".join(f"{k}: {v}" for k, v in list(bad.items())[:3]))


async def run_attacks_beside_a_healthy_subscriber(pushd, topic: str, attacks, timeout: float,
                                                  errors: tuple = (AssertionError, OSError, EOFError)) -> None:
    """Runs each blocking `attack(port)` in a thread while an SSE subscriber of `topic` listens.
    After every attack a marker is published: the subscriber must have received exactly the
    markers so far, in order, and never be disconnected; pushd must stay alive. An attack that
    raises one of `errors` (or exceeds `timeout` s) is a failure, reported after all have run."""
    import asyncio
    import time

    import httpx

    from e2e_util import AsyncSSE

    sub = await AsyncSSE.open(pushd.port, f"/topics/{topic}")
    want: list[tuple[str, str]] = []
    failures: list[str] = []
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            for attack in attacks:
                t0 = time.monotonic()
                try:
                    await asyncio.wait_for(asyncio.to_thread(attack, pushd.port), timeout)
                except (*errors, asyncio.TimeoutError) as e:
                    failures.append(f"{attack.__name__}: {type(e).__name__}: {e}"[:2000])
                print(f"{attack.__name__}: {time.monotonic() - t0:.2f}s")
                data = f"marker after {attack.__name__}"
                r = await c.post(pushd.url(f"/topics/{topic}"), content=data.encode())
                assert r.status_code == 200, (attack.__name__, r.status_code, r.text)
                want.append((r.json()["id"], data))
                await sub.wait_for(lambda s: len(s.events) >= len(want), 5, f"the marker after {attack.__name__}")
                got = [(e.id, e.data) for e in sub.events]
                assert got == want, f"subscriber stream wrong after {attack.__name__}: {got[-3:]}"
        await asyncio.sleep(0.2)
        assert [(e.id, e.data) for e in sub.events] == want
        assert not sub.eof, "the healthy subscriber was disconnected"
        assert pushd.alive()
    finally:
        await sub.close()
    assert not failures, "\n".join(failures)
