"""`state_directory` (API.md "Event ids and replay"): event ids keep increasing across restarts
whatever the clock does. A clean stop records the newest id, so restarts do not push ids ahead of
the wall clock (found by an adversarial run: each restart moved ids about 60 s into the future);
after a crash (SIGKILL) the next run starts above the lease written ahead of time. Two daemons
cannot share one state directory (an exclusive lock)."""
import os
import signal
import time

from auth_util import run_expecting_exit
from conftest import BACKENDS, pushd_binary
from e2e_util import free_port, publish_sync


def _ms(event_id: str) -> int:
    return int(event_id.split("-")[0])


def _key(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def test_clean_restarts_keep_ids_increasing_and_near_the_clock(pushd_factory, tmp_path):
    env = {"PUSHD_STATE_DIRECTORY": str(tmp_path)}
    d = pushd_factory(env=env)
    port = d.port
    ids = [publish_sync(port, "state", "first")]
    for n in range(4):  # four restarts within a few seconds
        d.stop()
        assert d.exit_code == 0
        d = pushd_factory(env=env, port=port)
        ids.append(publish_sync(port, "state", f"after restart {n}"))
        now = int(time.time() * 1000)
        assert _ms(ids[-1]) <= now + 2000, f"id {ids[-1]} is {(_ms(ids[-1]) - now) / 1000:.1f} s ahead of the clock"
    assert [_key(i) for i in ids] == sorted(_key(i) for i in ids) and len(set(ids)) == len(ids), ids


def test_after_a_crash_ids_start_above_the_lease(pushd_factory, tmp_path):
    env = {"PUSHD_STATE_DIRECTORY": str(tmp_path)}
    d = pushd_factory(env=env)
    port = d.port
    before = publish_sync(port, "state", "before the crash")
    d.stopped_by_test = True
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    d = pushd_factory(env=env, port=port)
    after = publish_sync(port, "state", "after the crash")
    assert _key(after) > _key(before), (before, after)
    # The lease is written ahead of the newest id; after a crash the next run starts at it.
    lease = int((tmp_path / "event-id-lease").read_text())
    assert _ms(after) >= lease - 60_000, (after, lease)


def test_two_daemons_cannot_share_a_state_directory(pushd_factory, tmp_path, backend):
    env = {"PUSHD_STATE_DIRECTORY": str(tmp_path)}
    first = pushd_factory(env=env)
    code, out = run_expecting_exit(
        [pushd_binary(), "serve", "--listen", f"127.0.0.1:{free_port()}", *BACKENDS[backend]], env=env)
    assert code != 0, out
    assert "is in use by another running pushd" in out, out
    assert first.alive()
    publish_sync(first.port, "state", "the first one still serves")
    # Once the first has stopped, the directory is free again.
    first.stop()
    second = pushd_factory(env=env)
    publish_sync(second.port, "state", "second")


def test_repeated_crashes_do_not_push_ids_further_ahead(pushd_factory, tmp_path):
    """After a crash ids start at the lease, up to a minute ahead of the clock; crashing again and
    again must not add another minute each time (found by an adversarial run: 60, 120, 180, 240 s
    ahead after successive SIGKILLs)."""
    env = {"PUSHD_STATE_DIRECTORY": str(tmp_path)}
    ids = []
    port = None
    for n in range(4):
        d = pushd_factory(env=env, port=port)
        port = d.port
        ids.append(publish_sync(port, "state", f"run {n}"))
        ahead = _ms(ids[-1]) - int(time.time() * 1000)
        assert ahead <= 65_000, f"run {n}: id {ids[-1]} is {ahead / 1000:.1f} s ahead of the clock"
        d.stopped_by_test = True
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
    assert [_key(i) for i in ids] == sorted(_key(i) for i in ids) and len(set(ids)) == len(ids), ids
