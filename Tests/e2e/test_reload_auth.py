"""A SIGHUP reload that changes the auth rules applies to open connections too (found by an
adversarial run: a revoked publish token kept publishing over an open WebSocket, and subscribers of
a topic made private kept receiving it). Each open stream is checked again as if it subscribed now:
SSE streams the new rules do not authorize end cleanly (the client reconnects and is authorized
anew), such WebSockets are closed with 1008, and WebSocket publish rights follow the new rules.
Streams the new rules still authorize are untouched."""
from __future__ import annotations

import asyncio
import json
import signal
import time

import websockets

from auth_util import HS_SECRET, STATIC_TOKEN, SSEStream, bearer, claims, jwt, write_config, Keys
from e2e_util import http_request

OTHER_TOKEN = "second-static-publish-token-0123456789"


def _config(tmp_path, keys, tokens: list[str], private: list[str]) -> None:
    text = write_config(tmp_path, keys, "websocket:\n  allow_publish: true\n").read_text()
    text = text.replace(f'tokens: ["{STATIC_TOKEN}"]', "tokens: [" + ", ".join(f'"{t}"' for t in tokens) + "]")
    text = text.replace('private_topics: ["private/*", "secret"]', "private_topics: [" + ", ".join(f'"{p}"' for p in private) + "]")
    (tmp_path / "pushd-auth.yaml").write_text(text)


def _reload(d) -> None:
    before = d.log(400_000).count("configuration reloaded")
    d.proc.send_signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while d.log(400_000).count("configuration reloaded") == before:
        assert time.monotonic() < end, d.log()[-2000:]
        time.sleep(0.05)
    time.sleep(0.4)  # every loop picks the snapshot up on its next tick


def _publish(d, topic: str, data: str, token: str = OTHER_TOKEN) -> None:
    r = http_request(d.port, "POST", f"/topics/{topic}", data.encode(), bearer(token))
    assert r.status == 200, (r.status, r.body)


async def _reply(ws, ref: str) -> dict:
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if m.get("ref") == ref:
            return m


def test_reload_revoking_a_token_ends_its_websocket_publish_rights(pushd_factory, tmp_path):
    keys = Keys(tmp_path)
    _config(tmp_path, keys, [STATIC_TOKEN, OTHER_TOKEN], ["private/*"])
    d = pushd_factory(args=["--config", str(tmp_path / "pushd-auth.yaml")])

    async def run():
        url = f"ws://127.0.0.1:{d.port}/topics/news"
        async with websockets.connect(url, additional_headers=bearer(STATIC_TOKEN)) as revoked, \
                websockets.connect(url, additional_headers=bearer(OTHER_TOKEN)) as kept:
            for ws in (revoked, kept):
                await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "before", "ref": "1"}))
                assert (await _reply(ws, "1"))["op"] == "ack"
            _config(tmp_path, keys, [OTHER_TOKEN], ["private/*"])
            _reload(d)
            await revoked.send(json.dumps({"op": "publish", "topic": "news", "data": "after", "ref": "2"}))
            r = await _reply(revoked, "2")
            assert r["op"] == "error" and r["code"] == "forbidden", r
            await kept.send(json.dumps({"op": "publish", "topic": "news", "data": "kept", "ref": "2"}))
            assert (await _reply(kept, "2"))["op"] == "ack"
        assert "changed auth.publish.tokens" in d.log(400_000)
        assert STATIC_TOKEN not in d.log(400_000)

    asyncio.run(run())


def test_reload_making_a_topic_private_ends_its_anonymous_streams(pushd_factory, tmp_path):
    keys = Keys(tmp_path)
    _config(tmp_path, keys, [STATIC_TOKEN, OTHER_TOKEN], ["private/*"])
    d = pushd_factory(args=["--config", str(tmp_path / "pushd-auth.yaml")])
    tok = jwt("HS256", claims(subscribe=["news", "private/*"]), keys)

    async def run():
        sse_news = SSEStream(d.port, "/topics/news")
        sse_public = SSEStream(d.port, "/topics/weather")
        sse_token = SSEStream(d.port, f"/topics/news?access_token={tok}")
        sse_private = SSEStream(d.port, f"/topics/private/a?access_token={tok}")
        for s in (sse_news, sse_public, sse_token, sse_private):
            assert s.status == 200
        async with websockets.connect(f"ws://127.0.0.1:{d.port}/topics/news") as ws_news:
            _publish(d, "news", "n1")
            assert [e.data for e in sse_news.events(1)] == ["n1"]
            _config(tmp_path, keys, [STATIC_TOKEN, OTHER_TOKEN], ["private/*", "news"])
            _reload(d)
            # Anonymous subscribers of the now-private topic: the SSE stream ends, the WebSocket gets 1008.
            assert sse_news.events(5, timeout=5) == [] and sse_news.eof
            try:
                while True:
                    m = json.loads(await asyncio.wait_for(ws_news.recv(), 5))
                    assert m.get("data") != "n2", "a private event reached an unauthorized WebSocket"
            except websockets.ConnectionClosed:
                pass
            assert ws_news.close_code == 1008 and "reload" in ws_news.close_reason, (ws_news.close_code, ws_news.close_reason)
            # Streams whose token grants the topic, public streams and private streams stay.
            _publish(d, "news", "n2")
            _publish(d, "weather", "w1")
            _publish(d, "private/a", "p1")
            assert [e.data for e in sse_token.events(until_data="n2", timeout=5)][-1] == "n2"
            assert [e.data for e in sse_public.events(1, timeout=5)] == ["w1"]
            assert [e.data for e in sse_private.events(1, timeout=5)] == ["p1"]
            # Reconnecting anonymously is refused; with the token it replays what was missed.
            assert SSEStream(d.port, "/topics/news").status == 401
        log = d.log(400_000)
        assert "ended 1 SSE stream(s) and closed 1 WebSocket(s)" in log or (
            "SSE stream(s)" in log and "WebSocket(s)" in log), log[-2000:]
        for s in (sse_news, sse_public, sse_token, sse_private):
            s.close()

    asyncio.run(run())


def test_a_static_token_subscribing_a_private_topic_is_forbidden(pushd_factory, tmp_path):
    """A static publish token is a valid credential that grants no private topic: 403
    `forbidden_topic`, not `invalid_token` with a JWT parse error (found by an adversarial run)."""
    keys = Keys(tmp_path)
    _config(tmp_path, keys, [STATIC_TOKEN], ["private/*"])
    d = pushd_factory(args=["--config", str(tmp_path / "pushd-auth.yaml")])
    s = SSEStream(d.port, "/topics/private/a", bearer(STATIC_TOKEN))
    assert s.status == 403 and json.loads(s.body_start.decode())["error"] == "forbidden_topic", (s.status, s.body_start)
    s.close()

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{d.port}/topics/news") as ws:
            await ws.send(json.dumps({"op": "auth", "token": STATIC_TOKEN, "ref": "1"}))
            assert (await _reply(ws, "1"))["op"] == "ack"
            await ws.send(json.dumps({"op": "subscribe", "topic": "private/a", "ref": "2"}))
            r = await _reply(ws, "2")
            assert r["op"] == "error" and r["code"] == "forbidden_topic", r

    asyncio.run(run())


def test_reload_turning_on_websocket_publish_reaches_open_connections(pushd_factory, tmp_path):
    """`websocket.allow_publish` switched on by a reload applies to a WebSocket already open with
    a publish token, not only to new ones (found by an adversarial run)."""
    keys = Keys(tmp_path)
    _config(tmp_path, keys, [STATIC_TOKEN], ["private/*"])
    path = tmp_path / "pushd-auth.yaml"
    path.write_text(path.read_text().replace("allow_publish: true", "allow_publish: false"))
    d = pushd_factory(args=["--config", str(path)])

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{d.port}/topics/news", additional_headers=bearer(STATIC_TOKEN)) as ws:
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "off", "ref": "1"}))
            r = await _reply(ws, "1")
            assert r["op"] == "error" and r["code"] == "forbidden", r
            path.write_text(path.read_text().replace("allow_publish: false", "allow_publish: true"))
            _reload(d)
            await ws.send(json.dumps({"op": "publish", "topic": "news", "data": "on", "ref": "2"}))
            assert (await _reply(ws, "2"))["op"] == "ack"

    asyncio.run(run())


def test_reload_after_a_key_file_rotated_in_place(pushd_factory, tmp_path):
    """A JWT public key file rewritten with a new key (same path) is a change of rules: the reload
    says so, and a stream authorized by a token of the old key ends."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    keys = Keys(tmp_path)
    _config(tmp_path, keys, [STATIC_TOKEN], ["private/*"])
    d = pushd_factory(args=["--config", str(tmp_path / "pushd-auth.yaml")])
    old = jwt("RS256", claims(subscribe=["private/*"]), keys)
    stream = SSEStream(d.port, f"/topics/private/k?access_token={old}")
    assert stream.status == 200
    keys.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys.paths["rsa"].write_bytes(keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    _reload(d)
    assert "a key file's content changed" in d.log(400_000)
    assert stream.events(5, timeout=5) == [] and stream.eof, "a stream of the old key was kept"
    new = jwt("RS256", claims(subscribe=["private/*"]), keys)
    fresh = SSEStream(d.port, f"/topics/private/k?access_token={new}")
    assert fresh.status == 200
    _publish(d, "private/k", "k1", token=STATIC_TOKEN)
    assert [e.data for e in fresh.events(1, timeout=5)] == ["k1"]
    stream.close()
    fresh.close()
