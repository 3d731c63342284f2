"""Publish rate limit keyed by token (issue #6): an authenticated publish is charged to its token
— the JWT's `sub` (within its issuer), else a SHA-256 of the token, and a static token by its
digest — not to the client address. Two publishers with different tokens behind one address get a
burst each; one token used over several connections and source addresses shares one bucket.
Anonymous publishes keep the per-address bucket (test_hostile.py `_attack_publish_flood`).

The daemon runs with `limits.exempt_loopback: false`: every client here is on loopback, which is
otherwise exempt from the publish rate (last test)."""
from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import websockets

from auth_util import STATIC_TOKEN, Keys, bearer, claims, jwt, write_config
from e2e_util import SyncConn, request_bytes

RATE = 1
BURST = 5
LIMITED = {"PUSHD_LIMITS_EXEMPT_LOOPBACK": "false", "PUSHD_LIMITS_PUBLISH_RATE": str(RATE),
           "PUSHD_LIMITS_PUBLISH_BURST": str(BURST)}


class SrcConn(SyncConn):
    """A SyncConn from a chosen loopback source address (127.0.0.x)."""

    def __init__(self, port: int, source: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False


@pytest.fixture
def rated(pushd_factory, tmp_path):
    keys = Keys(tmp_path)
    cfg = write_config(tmp_path, keys, "websocket:\n  allow_publish: true\n")
    d = pushd_factory(env=LIMITED, args=["--config", str(cfg)])
    d.keys = keys
    return d


def publishes(port: int, source: str, token: str, n: int, topic: str = "rate") -> list[int]:
    """`n` publishes pipelined on one new connection from `source`; their statuses in order."""
    with SrcConn(port, source) as c:
        c.send(b"".join(request_bytes("POST", f"/topics/{topic}", b"x", bearer(token)) for _ in range(n)))
        out = []
        for _ in range(n):
            r = c.read_response()
            if r.status == 429:
                assert json.loads(r.body)["error"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
            out.append(r.status)
        return out


def refilled(since: float) -> int:
    """Tokens a bucket emptied at `since` may have regained by now (plus one for rounding)."""
    return int((time.monotonic() - since) * RATE) + 1


def test_two_tokens_from_one_address_each_get_their_own_burst(rated):
    alice = jwt("HS256", claims(publish=["*"], sub="alice"), rated.keys)
    bob = jwt("HS256", claims(publish=["*"], sub="bob"), rated.keys)
    nosub1 = jwt("HS256", {k: v for k, v in claims(publish=["*"], jti="1").items() if k != "sub"}, rated.keys)
    nosub2 = jwt("HS256", {k: v for k, v in claims(publish=["*"], jti="2").items() if k != "sub"}, rated.keys)
    p = rated.port
    t0 = time.monotonic()
    a = publishes(p, "127.0.0.2", alice, BURST + 3)
    assert a[:BURST] == [200] * BURST and a.count(200) <= BURST + refilled(t0), a
    # Same address, another subject: a full burst of its own (keyed by address it would be 429s).
    b = publishes(p, "127.0.0.2", bob, BURST + 3)
    assert b[:BURST] == [200] * BURST and 429 in b, b
    # Tokens without `sub` are told apart by their digest; the static token has its own bucket.
    assert publishes(p, "127.0.0.2", nosub1, BURST)[:BURST] == [200] * BURST
    assert publishes(p, "127.0.0.2", nosub2, BURST)[:BURST] == [200] * BURST
    assert publishes(p, "127.0.0.2", STATIC_TOKEN, BURST)[:BURST] == [200] * BURST


def test_one_token_shares_one_bucket_across_connections_and_addresses(rated):
    carol = jwt("HS256", claims(publish=["*"], sub="carol"), rated.keys)
    p = rated.port
    assert publishes(p, "127.0.0.2", carol, 3) == [200] * 3
    second = publishes(p, "127.0.0.2", carol, 4)  # another connection, same address
    emptied = time.monotonic()
    assert second[:2] == [200, 200] and second.count(200) < 4, second
    # Other source addresses: the same bucket (keyed by address each would get a fresh burst).
    for source in ("127.0.0.3", "127.0.0.4"):
        other = publishes(p, source, carol, BURST)
        assert other.count(200) <= refilled(emptied) and other.count(200) < BURST, (source, other)
    # Another token issued to the same subject (a refreshed token) shares it too.
    refreshed = jwt("HS256", claims(publish=["*"], sub="carol", ttl=600), rated.keys)
    assert refreshed != carol
    r = publishes(p, "127.0.0.5", refreshed, BURST)
    assert r.count(200) <= refilled(emptied) and r.count(200) < BURST, r
    # A token without `sub` is one bucket wherever it is used.
    nosub = jwt("HS256", {k: v for k, v in claims(publish=["*"], jti="c").items() if k != "sub"}, rated.keys)
    assert publishes(p, "127.0.0.2", nosub, BURST) == [200] * BURST
    spent = time.monotonic()
    r = publishes(p, "127.0.0.3", nosub, BURST)
    assert r.count(200) <= refilled(spent) and r.count(200) < BURST, r


def test_websocket_publish_command_is_charged_to_the_upgrade_token(rated):
    dave = jwt("HS256", claims(publish=["*"], sub="dave"), rated.keys)
    erin = jwt("HS256", claims(publish=["*"], sub="erin"), rated.keys)
    p = rated.port
    assert publishes(p, "127.0.0.2", dave, BURST) == [200] * BURST

    async def publish_once(token: str) -> dict:
        async with websockets.connect(f"ws://127.0.0.1:{p}/topics/wsrate", additional_headers=bearer(token)) as ws:
            await ws.send(json.dumps({"op": "publish", "topic": "wsrate", "data": "x", "ref": "1"}))
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if m.get("op") in ("ack", "error"):
                    return m

    r = asyncio.run(publish_once(dave))  # dave's bucket, spent over HTTP from another address
    assert r["op"] == "error" and r["code"] == "rate_limited" and r["ref"] == "1", r
    assert asyncio.run(publish_once(erin))["op"] == "ack"


def test_loopback_exemption_covers_token_publishes(pushd_factory, tmp_path):
    """`limits.exempt_loopback` (default true) exempts loopback publishers, token or not."""
    keys = Keys(tmp_path)
    d = pushd_factory(env={"PUSHD_LIMITS_PUBLISH_RATE": "1", "PUSHD_LIMITS_PUBLISH_BURST": "2"},
                      args=["--config", str(write_config(tmp_path, keys))])
    tok = jwt("HS256", claims(publish=["*"], sub="local"), keys)
    assert publishes(d.port, "127.0.0.1", tok, 20) == [200] * 20
