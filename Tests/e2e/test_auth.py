"""Publish auth and private-topic subscribe auth (issue #6, Build 1-2): static bearer tokens and
JWTs (HS256/384/512, RS256, ES256, EdDSA) whose `pushd` claim lists topic patterns; every hostile
token shape is refused with 401/403 and publishes nothing; tokens never reach the access log; a
stream ends when its token expires and a reconnect with a fresh token replays without a gap."""
from __future__ import annotations

import time

import pytest

from auth_util import (AUDIENCE, HS_SECRET, ISSUER, STATIC_TOKEN, Keys, SSEStream, bearer, claims,
                       jwt, run_expecting_exit, write_config)
from conftest import BACKENDS, pushd_binary
from e2e_util import assert_json_error, free_port, http_request


@pytest.fixture
def authd(pushd_factory, tmp_path):
    keys = Keys(tmp_path)
    d = pushd_factory(args=["--config", str(write_config(tmp_path, keys))])
    d.keys = keys
    return d


def post(d, topic: str, data: str = "x", headers: dict | None = None):
    return http_request(d.port, "POST", f"/topics/{topic}", data.encode(), headers)


def marker_only(d, topic: str, before) -> None:
    """Subscribes to public `topic`, runs `before()` (refused publishes), publishes a marker with the
    static token and asserts the marker is the only event that arrived."""
    with SSEStream(d.port, f"/topics/{topic}") as s:
        assert s.status == 200
        before()
        r = post(d, topic, "marker", bearer(STATIC_TOKEN))
        assert r.status == 200, r.body
        evs = s.events(until_data="marker", timeout=5)
        assert [e.data for e in evs] == ["marker"], f"a refused publish got through: {evs}"


def test_publish_without_token_is_401(authd):
    def refused():
        r = post(authd, "news")
        assert_json_error(r, 401)
        assert r.headers.get("www-authenticate", "").startswith("Bearer")
        assert_json_error(http_request(authd.port, "POST", "/publish",
                                       b'{"events":[{"topic":"news","data":"x"}]}'), 401)
        assert_json_error(post(authd, "news", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401)
    marker_only(authd, "news", refused)


def test_static_token(authd):
    assert post(authd, "anything/at/all", headers=bearer(STATIC_TOKEN)).status == 200
    wrong = STATIC_TOKEN[:-1] + ("x" if STATIC_TOKEN[-1] != "x" else "y")
    marker_only(authd, "news", lambda: assert_json_error(post(authd, "news", headers=bearer(wrong)), 401))


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA"])
def test_jwt_publishes_only_its_topics(authd, alg):
    tok = jwt(alg, claims(publish=["news", "chat/*"]), authd.keys)
    h = bearer(tok)
    assert post(authd, "news", headers=h).status == 200
    assert post(authd, "chat/room1", headers=h).status == 200
    assert post(authd, "chat/a/b", headers=h).status == 200

    def refused():
        for topic in ("other", "chatter", "chat", "newsroom"):
            assert_json_error(post(authd, topic, headers=h), 403)
        # A batch with one forbidden topic publishes nothing (all or none).
        r = http_request(authd.port, "POST", "/publish",
                         b'{"events":[{"topic":"news","data":"a"},{"topic":"other","data":"b"}]}', h)
        assert_json_error(r, 403)
    marker_only(authd, "news", refused)
    r = http_request(authd.port, "POST", "/publish",
                     b'{"events":[{"topic":"news","data":"a"},{"topic":"chat/x","data":"b"}]}', h)
    assert r.status == 200, r.body


def hostile_tokens(keys: Keys) -> dict[str, str]:
    pub = ["news"]
    now = time.time()
    good = jwt("HS256", claims(publish=pub), keys)
    head, payload, sig = good.split(".")
    other_sig = jwt("HS256", claims(publish=["*"]), keys).split(".")[2]
    return {
        "expired": jwt("HS256", claims(publish=pub, exp=int(now - 5)), keys),
        "not_yet_valid": jwt("HS256", claims(publish=pub, nbf=int(now + 3600)), keys),
        "forged_signature": jwt("HS256", claims(publish=pub), keys, secret="another-secret-0123456789-0123456789"),
        "swapped_signature": f"{head}.{payload}.{other_sig}",
        "alg_none": jwt("none", claims(publish=pub), keys),
        "alg_none_with_sig": jwt("none", claims(publish=pub), keys) + sig,
        "alg_NONE": jwt("HS256", claims(publish=pub), keys, header={"alg": "NONE"}),
        "hs256_with_rsa_public_key": jwt("HS256", claims(publish=pub), keys, secret=keys.pem("rsa")),
        "hs256_with_ed_public_key": jwt("HS256", claims(publish=pub), keys, secret=keys.pem("ed")),
        "rs256_header_es_signature": jwt("ES256", claims(publish=pub), keys, header={"alg": "RS256"}),
        "es256_header_ed_signature": jwt("EdDSA", claims(publish=pub), keys, header={"alg": "ES256"}),
        "wrong_audience": jwt("HS256", claims(publish=pub, aud="someone-else"), keys),
        "no_audience": jwt("HS256", {k: v for k, v in claims(publish=pub).items() if k != "aud"}, keys),
        "wrong_issuer": jwt("RS256", claims(publish=pub, iss="https://evil.example"), keys),
        "crit_header": jwt("HS256", claims(publish=pub), keys, header={"crit": ["exp"]}),
        "garbage": "not.a.jwt",
        "padded_base64": good + "==",
    }


def test_hostile_jwts_refused_and_publish_nothing(authd):
    tokens = hostile_tokens(authd.keys)

    def refused():
        for name, tok in tokens.items():
            r = post(authd, "news", headers=bearer(tok))
            assert r.status == 401, f"{name}: {r.status} {r.body!r}"
            assert_json_error(r, 401)
    marker_only(authd, "news", refused)


def test_private_topic_subscribe(authd):
    tok = jwt("ES256", claims(subscribe=["private/*", "secret"]), authd.keys)
    only_a = jwt("EdDSA", claims(subscribe=["private/a"]), authd.keys)
    # No token: 401; a token that does not grant the topic: 403; a public topic needs nothing.
    assert_json_error(http_request(authd.port, "GET", "/topics/private/a"), 401)
    assert_json_error(http_request(authd.port, "GET", "/topics/secret"), 401)
    assert_json_error(http_request(authd.port, "GET", "/topics/private/b", headers=bearer(only_a)), 403)
    assert_json_error(http_request(authd.port, "GET", "/topics/secret", headers=bearer(only_a)), 403)
    # Multi-topic: every topic is checked.
    assert_json_error(http_request(authd.port, "GET", "/subscribe?topic=news&topic=secret",
                                   headers=bearer(only_a)), 403)
    assert_json_error(http_request(authd.port, "GET", "/subscribe?topic=news&topic=private/a"), 401)
    # A publish-only token does not grant subscribe.
    pub_only = jwt("HS256", claims(publish=["*"]), authd.keys)
    assert_json_error(http_request(authd.port, "GET", "/topics/secret", headers=bearer(pub_only)), 403)
    for name, bad in hostile_tokens(authd.keys).items():
        r = http_request(authd.port, "GET", "/topics/secret", headers=bearer(bad))
        assert r.status == 401, f"{name}: {r.status}"

    ways = {
        "header": ("/topics/private/a", bearer(tok)),
        "cookie": ("/topics/private/a", {"Cookie": f"theme=dark; pushd_token={tok}; x=y"}),
        "query": (f"/topics/private/a?access_token={tok}", {}),
        "multi": (f"/subscribe?topic=news&topic=secret&topic=private/a&access_token={tok}", {}),
    }
    for how, (path, headers) in ways.items():
        with SSEStream(authd.port, path, headers) as s:
            assert s.status == 200, f"{how}: {s.status} {s.body_start!r}"
            assert post(authd, "private/a", f"to-{how}", bearer(STATIC_TOKEN)).status == 200
            evs = s.events(until_data=f"to-{how}", timeout=5)
            assert [e.data for e in evs] == [f"to-{how}"], (how, evs)
    # Public topics stay public.
    with SSEStream(authd.port, "/topics/news") as s:
        assert s.status == 200


def test_replay_filtered_like_live(authd):
    """A subscriber never gets a private topic's retained events without a grant: the request is
    refused before replay, and with a grant for private/a only, replay carries private/a only."""
    first = post(authd, "news", "n0", bearer(STATIC_TOKEN)).json()["id"]
    post(authd, "private/a", "a1", bearer(STATIC_TOKEN))
    post(authd, "private/b", "b1", bearer(STATIC_TOKEN))
    only_a = jwt("HS512", claims(subscribe=["private/a"]), authd.keys)
    r = http_request(authd.port, "GET", f"/subscribe?topic=news&topic=private/b&last_event_id={first}",
                     headers=bearer(only_a))
    assert_json_error(r, 403)
    assert b"b1" not in r.body
    with SSEStream(authd.port, f"/subscribe?topic=news&topic=private/a&last_event_id={first}",
                   bearer(only_a)) as s:
        assert s.status == 200
        evs = s.events(count=1, timeout=3)
        assert [e.data for e in evs] == ["a1"], evs


def test_tokens_never_in_access_log(authd):
    tok = jwt("HS256", claims(subscribe=["private/*"]), authd.keys)
    with SSEStream(authd.port, f"/topics/private/log?access_token={tok}&last_event_id=") as s:
        assert s.status == 200
    with SSEStream(authd.port, "/topics/private/log", bearer(tok)) as s:
        assert s.status == 200
    post(authd, "news", "x", bearer(STATIC_TOKEN))
    http_request(authd.port, "GET", f"/subscribe?topic=secret&access%5Ftoken={tok}")
    post(authd, f"news?access_token={STATIC_TOKEN}", "x")
    time.sleep(0.5)
    log = authd.log_path.read_text(errors="replace")
    assert "REDACTED" in log, log[-2000:]
    for secret in (tok, tok.split(".")[2], STATIC_TOKEN, HS_SECRET):
        assert secret not in log, f"a token leaked into the log:\n{log[-2000:]}"


def test_token_expiry_ends_stream_and_reconnect_replays_without_gap(authd):
    topic = "private/exp"
    short = jwt("RS256", claims(subscribe=[topic], ttl=3), authd.keys)
    published: list[tuple[str, str]] = []

    def pub(data: str) -> None:
        r = post(authd, topic, data, bearer(STATIC_TOKEN))
        assert r.status == 200
        published.append((r.json()["id"], data))

    with SSEStream(authd.port, f"/topics/{topic}", bearer(short)) as s:
        assert s.status == 200
        for i in range(3):
            pub(f"e{i}")
        got = s.events(count=3, timeout=5)
        t0 = time.monotonic()
        got += s.events(timeout=8)  # until the daemon ends the stream
        assert s.eof, "the stream did not end when its token expired"
        assert time.monotonic() - t0 < 7
    last = got[-1].id
    # Events published while the client was away are replayed to the fresh token.
    for i in range(3, 6):
        pub(f"e{i}")
    # The expired token is refused on reconnect.
    assert_json_error(http_request(authd.port, "GET", f"/topics/{topic}", headers=bearer(short)), 401)
    fresh = jwt("RS256", claims(subscribe=[topic]), authd.keys)
    with SSEStream(authd.port, f"/topics/{topic}", {**bearer(fresh), "Last-Event-ID": last}) as s:
        assert s.status == 200
        pub("e6")
        got += s.events(until_data="e6", timeout=5)
    assert [(e.id, e.data) for e in got] == published, "gap or duplicate across the token-expiry reconnect"


def test_anonymous_publish_refused_on_non_loopback(backend, tmp_path):
    port = free_port()
    code, out = run_expecting_exit(
        [pushd_binary(), "serve", "--listen", f"0.0.0.0:{port}", *BACKENDS[backend]])
    assert code == 78, out
    assert "auth.publish" in out and "loopback" in out, out
    # A bad key file is a configuration error too, never a silently weaker check.
    bad = tmp_path / "bad.yaml"
    bad.write_text('auth:\n  jwt:\n    public_keys: ["/nonexistent.pem"]\n')
    code, out = run_expecting_exit([pushd_binary(), "serve", "--config", str(bad), *BACKENDS[backend]])
    assert code == 78 and "auth.jwt.public_keys[0]" in out, out
    bad.write_text('auth:\n  jwt:\n    secrets: ["short-secret"]\n')
    code, out = run_expecting_exit([pushd_binary(), "serve", "--config", str(bad), *BACKENDS[backend]])
    assert code == 78 and "auth.jwt.secrets[0]" in out, out
    assert "short-secret" not in out, "a secret was echoed in an error"


def test_auth_and_cors_reload_on_sighup(pushd_factory, tmp_path):
    """SIGHUP swaps tokens, keys, private topics and CORS origins; a file that would make publish
    anonymous on a non-loopback listener, or has a bad key, is refused and the old config stays."""
    import signal

    keys = Keys(tmp_path)
    cfg = write_config(tmp_path, keys)
    d = pushd_factory(args=["--config", str(cfg)])
    new_token = "rotated-static-token-9876543210"

    def wait_for(pred, what: str) -> None:
        end = time.monotonic() + 5
        while not pred():
            assert time.monotonic() < end, f"{what} not in effect after SIGHUP:\n{d.log()}"
            time.sleep(0.1)

    assert post(d, "news", headers=bearer(new_token)).status == 401
    cfg.write_text(cfg.read_text().replace(STATIC_TOKEN, new_token).replace(
        '["private/*", "secret"]', '["secret"]') + 'cors:\n  allowed_origins: ["https://new.example"]\n')
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: post(d, "news", headers=bearer(new_token)).status == 200, "the new token")
    assert post(d, "news", headers=bearer(STATIC_TOKEN)).status == 401
    with SSEStream(d.port, "/topics/private/a") as s:  # no longer private
        assert s.status == 200
    r = http_request(d.port, "OPTIONS", "/topics/news",
                     headers={"Origin": "https://new.example", "Access-Control-Request-Method": "POST"})
    assert r.status == 204
    # An invalid file is refused as a whole: the running auth stays.
    cfg.write_text('auth:\n  jwt:\n    public_keys: ["/nonexistent.pem"]\n')
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "auth.jwt.public_keys[0]" in d.log(100000), "the refusal")
    assert post(d, "news", headers=bearer(new_token)).status == 200
    assert post(d, "news").status == 401


def test_absurd_claim_values(authd):
    """Huge, negative or fractional NumericDates and odd claim shapes never crash the daemon."""
    for extra in ({"exp": 1e300}, {"exp": 2**70}, {"exp": -1}, {"nbf": -1e300}, {"exp": 0.5},
                  {"pushd": {"subscribe": "private/a"}}, {"pushd": None}, {"aud": [None, 1]}):
        tok = jwt("HS256", claims(subscribe=["private/*"], publish=["news"], **extra), authd.keys)
        r = post(authd, "news", headers=bearer(tok))
        assert r.status in (200, 401), (extra, r.status)
        try:
            with SSEStream(authd.port, "/topics/private/a", bearer(tok), timeout=3) as s:
                assert s.status in (200, 401), (extra, s.status)
        except EOFError:
            pass
    assert authd.alive()
    assert http_request(authd.port, "GET", "/healthz").status == 200


def test_large_unauthenticated_publish_refused_before_the_body(authd):
    """A 3 MiB Content-Length, a chunked body or `Expect: 100-continue` without a valid token is
    answered 401 on the head (no `100 Continue`), and the connection is closed unread."""
    from e2e_util import SyncConn, request_bytes
    cases = [
        {"Content-Length": str(3 * 1024 * 1024)},  # under the parser limit (413 above it)
        {"Transfer-Encoding": "chunked"},
        {"Content-Length": "5", "Expect": "100-continue"},
        {"Content-Length": str(3 * 1024 * 1024), "Authorization": "Bearer " + STATIC_TOKEN[:-1] + "?"},
    ]
    for path in ("/topics/news", "/publish"):
        for headers in cases:
            with SyncConn(authd.port, timeout=5) as c:
                head = f"POST {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                c.send((head + "\r\n").encode())
                r = c.read_response()
                assert r.status == 401, (path, headers, r.status, r.body)
                assert_json_error(r, 401)
                assert c.closed_by_peer(3), (path, headers)
    # With a valid token the same shapes are read and published.
    with SyncConn(authd.port, timeout=5) as c:
        c.send(request_bytes("POST", "/topics/news", b"x" * 100_000, {**bearer(STATIC_TOKEN), "Expect": "100-continue"}))
        r = c.read_response()
        if r.status == 100:
            r = c.read_response()
        assert r.status == 200, r.body
