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
