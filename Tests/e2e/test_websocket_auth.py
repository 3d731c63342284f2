"""WebSocket and auth together (issue #6 Build 2-3 on the issue #4 transport): the Origin allowlist
and private-topic authorization are decided before the 101; a `subscribe` command to a private
topic needs the upgrade's token to grant it; the `publish` command needs `websocket.allow_publish`
AND a publish grant for the topic; an expired token closes the socket with 1008."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

from auth_util import STATIC_TOKEN, Keys, bearer, claims, jwt, write_config
from e2e_util import http_request


@pytest.fixture
def wsauthd(pushd_factory, tmp_path):
    keys = Keys(tmp_path)
    extra = "websocket:\n  allow_publish: true\ncors:\n  allowed_origins: [\"https://app.example\"]\n"
    d = pushd_factory(args=["--config", str(write_config(tmp_path, keys, extra))])
    d.keys = keys
    return d


def upgrade_status(port: int, path: str, headers: dict[str, str]) -> int:
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    h.update(headers)
    return http_request(port, "GET", path, None, h).status


def test_origin_and_private_topic_decided_before_101(wsauthd):
    tok = jwt("HS256", claims(subscribe=["private/*"]), wsauthd.keys)
    p = wsauthd.port
    assert upgrade_status(p, "/topics/news", {"Origin": "https://evil.example"}) == 403
    assert upgrade_status(p, "/topics/news", {"Origin": "https://app.example"}) == 101
    assert upgrade_status(p, "/topics/private/a", {}) == 401
    assert upgrade_status(p, "/topics/secret", bearer(tok)) == 403
    assert upgrade_status(p, "/topics/private/a", bearer(tok)) == 101
    assert upgrade_status(p, f"/topics/private/a?access_token={tok}", {}) == 101


def test_subscribe_command_and_publish_command_rights(wsauthd):
    sub_a = jwt("HS256", claims(subscribe=["private/a"], publish=["news"]), wsauthd.keys)

    async def run():
        url = f"ws://127.0.0.1:{wsauthd.port}/topics/news"
        async with websockets.connect(url, additional_headers=bearer(sub_a)) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "private/b", "ref": "1"}))
            r = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert r["op"] == "error" and r["code"] == "forbidden_topic", r
            await ws.send(json.dumps({"op": "subscribe", "topic": "private/a", "ref": "2"}))
            r = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert r["op"] == "ack", r
            await ws.send(json.dumps({"op": "publish", "topic": "secret", "data": "no", "ref": "3"}))
            r = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert r["op"] == "error" and r["code"] == "forbidden_topic", r
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "yes", "ref": "4"}))
            got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
            ack = next(m for m in got if m.get("op") == "ack")
            ev = next(m for m in got if "data" in m)
            assert ack["ref"] == "4" and ev == {"id": ack["id"], "topic": "news", "data": "yes"}, got
        # Without any token: no publish rights at all.
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "anon", "ref": "5"}))
            r = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert r["op"] == "error" and r["code"] == "forbidden", r

    asyncio.run(run())


def test_expired_token_closes_with_1008(wsauthd):
    tok = jwt("HS256", claims(subscribe=["private/*"], ttl=2), wsauthd.keys)

    async def run():
        url = f"ws://127.0.0.1:{wsauthd.port}/topics/private/x"
        async with websockets.connect(url, additional_headers=bearer(tok)) as ws:
            started = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1008, (ws.close_code, ws.close_reason)
            assert time.monotonic() - started < 8
            assert closed.value is not None

    asyncio.run(run())


def test_publish_rights_end_with_the_upgrade_token(wsauthd):
    """A WebSocket's publish grant comes from its upgrade's JWT; once that token's `exp` passes,
    `{"op":"publish"}` is refused with `token_expired` and nothing is published (found by an
    adversarial test: the grant used to outlive the token)."""
    tok = jwt("HS256", claims(publish=["news"], ttl=2), wsauthd.keys)

    async def run():
        url = f"ws://127.0.0.1:{wsauthd.port}/topics/news"
        async with websockets.connect(url, additional_headers=bearer(tok)) as ws:
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "before", "ref": "1"}))
            seen = []
            while not any(m.get("ref") == "1" for m in seen):
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            assert any(m.get("op") == "ack" and m.get("ref") == "1" for m in seen), seen
            await asyncio.sleep(3.2)  # past exp (leeway 0s)
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "after", "ref": "2"}))
            reply = None
            while reply is None:
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert m.get("data") != "after", "published with an expired token"
                if m.get("ref") == "2":
                    reply = m
            assert reply["op"] == "error" and reply["code"] == "token_expired", reply
            # Still refused afterwards, and nothing named "after" ever arrives.
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "after", "ref": "3"}))
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m.get("op") == "error" and m.get("ref") == "3", m

    asyncio.run(run())


def test_private_topic_subscribed_by_command_ends_with_the_token(wsauthd):
    """A private topic joined by `{"op":"subscribe"}` after the upgrade (the upgrade's URL named
    only public topics) is bounded by the token's `exp` too: the socket is closed with 1008 once it
    passes, like a private topic named in the URL."""
    tok = jwt("HS256", claims(subscribe=["private/*"], ttl=2), wsauthd.keys)

    async def run():
        url = f"ws://127.0.0.1:{wsauthd.port}/topics/news"
        async with websockets.connect(url, additional_headers=bearer(tok)) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "private/x", "ref": "1"}))
            r = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert r["op"] == "ack", r
            started = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1008, (ws.close_code, ws.close_reason)
            assert time.monotonic() - started < 8

    asyncio.run(run())


async def _reply(ws, ref: str) -> dict:
    """The ack/error with `ref`, skipping events that arrive in between."""
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if m.get("ref") == ref:
            return m


def test_auth_command_gives_a_headerless_client_publish_rights(wsauthd):
    """A browser cannot set `Authorization` on a WebSocket upgrade: `{"op":"auth","token":..}` gives
    the connection the token's rights as if it had been on the upgrade."""
    tok = jwt("HS256", claims(publish=["news"]), wsauthd.keys)

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{wsauthd.port}/topics/news") as ws:
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "before", "ref": "1"}))
            assert (await _reply(ws, "1"))["code"] == "forbidden"
            await ws.send(json.dumps({"op": "auth", "token": tok, "ref": "2"}))
            assert (await _reply(ws, "2"))["op"] == "ack"
            await ws.send(json.dumps({"op": "publish", "topic": "secret", "data": "no", "ref": "3"}))
            assert (await _reply(ws, "3"))["code"] == "forbidden_topic"
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "yes", "ref": "4"}))
            got = []
            while len(got) < 2:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            ack = next(m for m in got if m.get("op") == "ack")
            assert ack["ref"] == "4" and {"id": ack["id"], "topic": "news", "data": "yes"} in got, got
        # A static publish token works the same way.
        async with websockets.connect(f"ws://127.0.0.1:{wsauthd.port}/topics/news") as ws:
            await ws.send(json.dumps({"op": "auth", "token": STATIC_TOKEN, "ref": "a"}))
            assert (await _reply(ws, "a"))["op"] == "ack"
            await ws.send(json.dumps({"op": "publish", "topic": "anything", "data": "s", "ref": "b"}))
            assert (await _reply(ws, "b"))["op"] == "ack"

    asyncio.run(run())


def test_auth_command_refuses_bad_tokens_and_closes_after_three(wsauthd):
    expired = jwt("HS256", claims(publish=["news"], ttl=-60), wsauthd.keys)
    forged = jwt("HS256", claims(publish=["news"]), wsauthd.keys)[:-4] + "AAAA"

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{wsauthd.port}/topics/news") as ws:
            for i, token in enumerate([expired, forged]):
                await ws.send(json.dumps({"op": "auth", "token": token, "ref": str(i)}))
                r = await _reply(ws, str(i))
                assert r["op"] == "error" and r["code"] == "invalid_token", r
            # Still no rights after refused tokens.
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "x", "ref": "p"}))
            assert (await _reply(ws, "p"))["code"] == "forbidden"
            await ws.send(json.dumps({"op": "auth", "token": "nonsense", "ref": "3"}))
            assert (await _reply(ws, "3"))["code"] == "invalid_token"
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008, (ws.close_code, ws.close_reason)

    asyncio.run(run())


def test_auth_command_refreshes_a_private_subscription(wsauthd):
    """A fresh token sent before the old one expires keeps a private stream open past the first
    `exp`; a token that does not grant the subscribed private topic is refused and changes nothing."""
    short = jwt("HS256", claims(subscribe=["private/*"], ttl=2), wsauthd.keys)
    longer = jwt("HS256", claims(subscribe=["private/*"], ttl=30), wsauthd.keys)
    other = jwt("HS256", claims(subscribe=["team/*"], ttl=30), wsauthd.keys)

    async def run():
        url = f"ws://127.0.0.1:{wsauthd.port}/topics/private/x?access_token={short}"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"op": "auth", "token": other, "ref": "1"}))
            r = await _reply(ws, "1")
            assert r["op"] == "error" and r["code"] == "forbidden_topic", r
            await ws.send(json.dumps({"op": "auth", "token": longer, "ref": "2"}))
            assert (await _reply(ws, "2"))["op"] == "ack"
            await asyncio.sleep(3.5)  # past the first token's exp
            wsauthd_publish(wsauthd, "private/x", "still here")
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m.get("data") == "still here", m

    asyncio.run(run())


def wsauthd_publish(d, topic: str, data: str) -> None:
    r = http_request(d.port, "POST", f"/topics/{topic}", data.encode(), bearer(STATIC_TOKEN))
    assert r.status == 200, (r.status, r.body)


def test_auth_command_with_a_static_token_keeps_private_streams(wsauthd):
    """A static publish token grants no private topic: sent with `auth` on a connection subscribed
    to one, it gets `forbidden_topic` (not `invalid_token`: the token is valid) and changes nothing."""
    tok = jwt("HS256", claims(subscribe=["private/*"]), wsauthd.keys)

    async def run():
        url = f"ws://127.0.0.1:{wsauthd.port}/topics/private/y?access_token={tok}"
        async with websockets.connect(url) as ws:
            for i in range(4):  # valid tokens never count as strikes
                await ws.send(json.dumps({"op": "auth", "token": STATIC_TOKEN, "ref": str(i)}))
                r = await _reply(ws, str(i))
                assert r["op"] == "error" and r["code"] == "forbidden_topic", r
                assert "private/y" in r["message"], r
            wsauthd_publish(wsauthd, "private/y", "kept")
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m.get("data") == "kept", m

    asyncio.run(run())


def test_unsubscribing_the_last_private_topic_lifts_the_token_bound(wsauthd):
    """The token's `exp` bounds a connection only while it holds a private topic: once the last one
    is unsubscribed, the connection is a public subscriber again and stays open past `exp` (it
    used to be closed with 1008 anyway). Subscribing a private topic again checks the token anew,
    so the expired token is refused."""
    tok = jwt("HS256", claims(subscribe=["private/*"], ttl=2), wsauthd.keys)

    async def run():
        url = f"ws://127.0.0.1:{wsauthd.port}/topics/news"
        async with websockets.connect(url, additional_headers=bearer(tok)) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "private/x", "ref": "1"}))
            assert (await _reply(ws, "1"))["op"] == "ack"
            await ws.send(json.dumps({"op": "unsubscribe", "topic": "private/x", "ref": "2"}))
            assert (await _reply(ws, "2"))["op"] == "ack"
            await asyncio.sleep(3.5)  # past exp (leeway 0 s) and past a WebSocket tick
            wsauthd_publish(wsauthd, "news", "public after exp")
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m.get("data") == "public after exp", m
            await ws.send(json.dumps({"op": "subscribe", "topic": "private/x", "ref": "3"}))
            r = await _reply(ws, "3")
            assert r["op"] == "error" and r["code"] == "invalid_token", r

    asyncio.run(run())
