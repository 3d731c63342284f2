"""CORS (issue #6, Build 3; Fetch Standard §3.2): preflights answered before auth, allowed
origins echoed with `Vary: Origin` on publish answers, errors and the SSE stream head, nothing for
a disallowed origin (preflight 403 JSON), and never `*` together with credentials."""
from __future__ import annotations

import pytest

from auth_util import (STATIC_TOKEN, Keys, SSEStream, bearer, claims, jwt, run_expecting_exit,
                       write_config)
from conftest import BACKENDS, pushd_binary
from e2e_util import assert_json_error, http_request

ALLOWED = "https://app.example"
EVIL = "https://evil.example"


def cors_headers(r) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-")}


@pytest.fixture
def corsd(pushd_factory, tmp_path):
    keys = Keys(tmp_path)
    extra = f'cors:\n  allowed_origins: ["{ALLOWED}", "http://localhost:3000"]\n  allow_credentials: true\n  max_age: 120s\n'
    d = pushd_factory(args=["--config", str(write_config(tmp_path, keys, extra))])
    d.keys = keys
    return d


def preflight(d, path: str, origin: str, method: str = "POST", headers: str = "authorization, content-type"):
    return http_request(d.port, "OPTIONS", path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def test_preflight_allowed_origin_before_auth(corsd):
    # Publish auth is on, and the preflight carries no credentials (Fetch §3.2.2): still 204.
    for path in ("/topics/news", "/publish", "/subscribe?topic=secret", "/topics/private/a"):
        r = preflight(corsd, path, ALLOWED)
        assert r.status == 204, (path, r.status, r.body)
        assert r.headers["access-control-allow-origin"] == ALLOWED
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "POST" in r.headers["access-control-allow-methods"]
        allowed = r.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed and "last-event-id" in allowed
        assert r.headers["access-control-max-age"] == "120"
        assert "origin" in r.headers.get("vary", "").lower()
        assert "content-length" not in r.headers  # RFC 9110 §8.6


def test_preflight_disallowed_origin_is_403_without_cors_headers(corsd):
    for origin in (EVIL, "null", "https://app.example.evil", "http://app.example", ALLOWED + ":443"):
        r = preflight(corsd, "/topics/news", origin)
        assert_json_error(r, 403)
        assert cors_headers(r) == {}, (origin, r.headers)


def test_actual_responses_carry_cors_for_allowed_origin_only(corsd):
    h = {**bearer(STATIC_TOKEN), "Origin": ALLOWED}
    r = http_request(corsd.port, "POST", "/topics/news", b"x", h)
    assert r.status == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "origin" in r.headers["vary"].lower()
    # Errors too, so the page can read why (401 without a token).
    r = http_request(corsd.port, "POST", "/topics/news", b"x", {"Origin": ALLOWED})
    assert_json_error(r, 401)
    assert r.headers["access-control-allow-origin"] == ALLOWED
    # A disallowed origin gets no CORS header at all (the browser hides the answer).
    r = http_request(corsd.port, "POST", "/topics/news", b"x", {**bearer(STATIC_TOKEN), "Origin": EVIL})
    assert r.status == 200 and cors_headers(r) == {}
    # No Origin (not a browser): nothing added.
    r = http_request(corsd.port, "POST", "/topics/news", b"x", bearer(STATIC_TOKEN))
    assert cors_headers(r) == {}


def test_sse_stream_head_carries_cors(corsd):
    tok = jwt("HS256", claims(subscribe=["private/*"]), corsd.keys)
    with SSEStream(corsd.port, "/topics/private/c", {"Origin": ALLOWED, "Cookie": f"pushd_token={tok}"}) as s:
        assert s.status == 200
        assert s.headers["access-control-allow-origin"] == ALLOWED
        assert s.headers["access-control-allow-credentials"] == "true"
        assert s.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in s.headers
        assert http_request(corsd.port, "POST", "/topics/private/c", b"hello", bearer(STATIC_TOKEN)).status == 200
        assert [e.data for e in s.events(until_data="hello", timeout=5)] == ["hello"]
    with SSEStream(corsd.port, "/topics/news", {"Origin": EVIL}) as s:
        assert s.status == 200 and cors_headers(s) == {}


def test_wildcard_without_credentials(pushd_factory, tmp_path):
    cfg = tmp_path / "wild.yaml"
    cfg.write_text('cors:\n  allowed_origins: ["*"]\n')
    d = pushd_factory(args=["--config", str(cfg)])
    r = preflight(d, "/topics/news", EVIL)
    assert r.status == 204 and r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    r = http_request(d.port, "POST", "/topics/news", b"x", {"Origin": EVIL})
    assert r.status == 200 and r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers


def test_no_wildcard_with_credentials(backend, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text('cors:\n  allowed_origins: ["*"]\n  allow_credentials: true\n')
    code, out = run_expecting_exit([pushd_binary(), "serve", "--config", str(cfg), *BACKENDS[backend]])
    assert code == 78, out
    assert "cors.allowed_origins" in out and "*" in out, out


def test_cors_off_by_default(pushd):
    r = preflight(pushd, "/topics/news", ALLOWED)
    assert_json_error(r, 403)
    assert cors_headers(r) == {}
    r = http_request(pushd.port, "POST", "/topics/news", b"x", {"Origin": ALLOWED})
    assert r.status == 200 and cors_headers(r) == {}
