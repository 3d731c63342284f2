"""Publish extras (issue #3): Idempotency-Key (a retried publish gets the first id and is delivered
once; the same key on another topic is 409) and `POST /publish` batches (in order, consecutive ids,
all or none: one bad entry publishes nothing). Delivery is checked with a live subscriber and a
marker event published afterwards, so "nothing was delivered" is not a timing guess.
"""
import asyncio
import json

import pytest

from e2e_util import (AsyncSSE, assert_json_error, http_request, id_key, publish_sync)

JSON_CT = {"Content-Type": "application/json"}


def post_batch(port, doc, headers=None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(doc).encode()
    return http_request(port, "POST", "/publish", body, {**JSON_CT, **(headers or {})})


def watch(port, path, marker_topic, action):
    """Open a subscriber on `path`, run `action()` (sync, in a thread), publish a marker to
    `marker_topic`, and return (action result, [(id, event, data)] received before the marker)."""
    async def run():
        sse = await AsyncSSE.open(port, path)
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, action)
            mid = await loop.run_in_executor(None, lambda: publish_sync(port, marker_topic, "marker"))
            await sse.wait_for(lambda s: any(e.id == mid for e in s.events), 10, "the marker")
            evs = [(e.id, e.event, e.data) for e in sse.events]
            return result, evs[:[e[0] for e in evs].index(mid)]
        finally:
            await sse.close()
    return asyncio.run(run())


def consecutive(ids: list[str]) -> bool:
    """Each id directly follows the previous one: same ms and seq+1, or a new ms starting at 0."""
    for a, b in zip(ids, ids[1:]):
        (ma, sa), (mb, sb) = id_key(a), id_key(b)
        if not ((mb == ma and sb == sa + 1) or (mb > ma and sb == 0)):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Idempotency-Key


def test_idempotency_key_retry_same_id_delivered_once(pushd):
    key = {"Idempotency-Key": "order-42-attempt"}

    def action():
        r1 = http_request(pushd.port, "POST", "/topics/idem/a", b"payload", key)
        r2 = http_request(pushd.port, "POST", "/topics/idem/a", b"payload", key)
        r3 = http_request(pushd.port, "POST", "/topics/idem/a", b"payload", key)
        return r1, r2, r3

    (r1, r2, r3), evs = watch(pushd.port, "/topics/idem/a", "idem/a", action)
    assert r1.status == 200, r1.body
    assert r2.status == 200 and r3.status == 200, (r2.status, r2.body, r3.status, r3.body)
    assert r2.json() == r1.json() == r3.json(), (r1.body, r2.body, r3.body)
    assert [(e[0], e[2]) for e in evs] == [(r1.json()["id"], "payload")], (
        f"a retried publish must be delivered once: {evs}")


def test_idempotency_different_keys_publish_twice(pushd):
    ids = [json.loads(http_request(pushd.port, "POST", "/topics/idem/b", b"x",
                                   {"Idempotency-Key": k}).body)["id"] for k in ("k1", "k2")]
    assert ids[0] != ids[1]


def test_idempotency_key_reused_on_other_topic_409(pushd):
    key = {"Idempotency-Key": "shared-key"}
    r1 = http_request(pushd.port, "POST", "/topics/idem/c", b"x", key)
    assert r1.status == 200

    def action():
        return http_request(pushd.port, "POST", "/topics/idem/d", b"y", key)

    r2, evs = watch(pushd.port, "/topics/idem/d", "idem/d", action)
    doc = assert_json_error(r2, 409)
    assert doc["error"] == "idempotency_key_reused", doc
    assert evs == [], f"a 409 publish must not be delivered: {evs}"


def test_idempotency_key_batch_retry(pushd):
    key = {"Idempotency-Key": "batch-key-1"}
    doc = {"events": [{"topic": "idem/e", "data": "one"}, {"topic": "idem/e", "data": "two"}]}

    def action():
        return post_batch(pushd.port, doc, key), post_batch(pushd.port, doc, key)

    (r1, r2), evs = watch(pushd.port, "/topics/idem/e", "idem/e", action)
    assert r1.status == 200, r1.body
    assert r2.status == 200 and r2.json() == r1.json(), (r1.body, r2.body)
    assert [e[2] for e in evs] == ["one", "two"], f"a retried batch must be delivered once: {evs}"


def test_idempotency_key_invalid_400(pushd):
    r = http_request(pushd.port, "POST", "/topics/idem/f", b"x", {"Idempotency-Key": "k" * 257})
    assert_json_error(r, 400)


# ---------------------------------------------------------------------------------------------
# Batches


def test_batch_in_order_consecutive_ids(pushd):
    entries = [{"topic": "batch/a", "event": "created", "data": "a1"},
               {"topic": "batch/b", "data": "b1"},
               {"topic": "batch/a", "data": "line1\nline2"},
               {"topic": "batch/b", "event": None, "data": ""},
               {"topic": "batch/a", "event": "x.y-z_1", "data": "a3 ünï"}]

    def action():
        return post_batch(pushd.port, {"events": entries})

    r, evs = watch(pushd.port, "/subscribe?topic=batch/a&topic=batch/b", "batch/a", action)
    assert r.status == 200, r.body
    assert r.headers.get("content-type", "").startswith("application/json")
    out = r.json()["events"]
    assert [o["topic"] for o in out] == [e["topic"] for e in entries], out
    ids = [o["id"] for o in out]
    assert consecutive(ids), f"batch ids not consecutive: {ids}"
    assert evs == [(i, e.get("event"), e["data"]) for i, e in zip(ids, entries)], evs


@pytest.mark.parametrize("bad,where", [
    ({"topic": "bad topic", "data": "x"}, "topic"),
    ({"topic": "a/../b", "data": "x"}, "topic"),
    ({"topic": "batch/ok", "event": "bad name!", "data": "x"}, "event"),
    ({"topic": "batch/ok", "event": "pushd.gap", "data": "x"}, "event"),
    ({"topic": "batch/ok"}, "data"),
    ({"topic": "batch/ok", "data": 5}, "data"),
    ({"topic": "batch/ok", "data": None}, "data"),
    ({"data": "x"}, "topic"),
])
def test_batch_one_bad_entry_publishes_nothing(pushd, bad, where):
    entries = [{"topic": "batch/ok", "data": "first"}, {"topic": "batch/ok", "data": "second"},
               bad, {"topic": "batch/ok", "data": "last"}]

    def action():
        return post_batch(pushd.port, {"events": entries})

    r, evs = watch(pushd.port, "/topics/batch/ok", "batch/ok", action)
    doc = assert_json_error(r, 400)
    assert doc["message"].startswith(f"events[2].{where}"), doc
    assert evs == [], f"a rejected batch delivered events: {evs}"


@pytest.mark.parametrize("raw", [b'{"events":[{"topic":"batch/ok","data":"x"}', b"not json",
                                 b'{"events":[{"topic":"batch/ok","data":"x"},]}', b"",
                                 b'{"events":{}}', b'[{"topic":"batch/ok","data":"x"}]'])
def test_batch_malformed_json_400(pushd, raw):
    def action():
        return post_batch(pushd.port, None, raw=raw)

    r, evs = watch(pushd.port, "/topics/batch/ok", "batch/ok", action)
    assert_json_error(r, 400)
    assert evs == [], evs


@pytest.mark.parametrize("doc", [{"events": []}, {}])
def test_batch_empty_or_missing_events_400(pushd, doc):
    r = post_batch(pushd.port, doc)
    assert_json_error(r, 400)


def test_single_publish_reserved_event_name_400(pushd):
    """A publisher cannot forge a gap signal."""
    r = http_request(pushd.port, "POST", "/topics/batch/ok?event=pushd.gap", b"{}")
    assert_json_error(r, 400)
