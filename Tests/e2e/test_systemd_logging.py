"""Logging: with JOURNAL_STREAM set every record is one line with an sd-daemon(3) `<N>` priority
prefix; without it lines are human-readable with a timestamp and level; `log.access: true` logs
one line per request with its status."""
import re

import httpx
import pytest


@pytest.mark.pushd(env={"JOURNAL_STREAM": "8:12345", "PUSHD_LOG_ACCESS": "true"})
def test_journal_prefixes_and_access_log(pushd):
    assert httpx.get(pushd.url("/healthz"), timeout=5).status_code == 200
    assert httpx.get(pushd.url("/nope"), timeout=5).status_code == 404
    assert httpx.post(pushd.url("/topics/t"), content=b"x", timeout=5).status_code == 200
    lines = [l for l in pushd.log().splitlines() if l]
    assert lines
    for line in lines:
        assert re.match(r"^<[0-7]>\S", line), line
    text = "\n".join(lines)
    assert re.search(r"^<6>pushd serving ", text, re.M), text
    assert re.search(r"^<6>GET /healthz 200 access=1 (loop=\d+ )?peer=127\.0\.0\.1:\d+$", text, re.M), text
    assert re.search(r"^<6>GET /nope 404 ", text, re.M), text
    assert re.search(r"^<6>POST /topics/t 200 ", text, re.M), text


def test_human_log_without_journal(pushd):
    lines = [l for l in pushd.log().splitlines() if l]
    assert any(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info pushd: pushd serving ", l) for l in lines), lines
    assert not any("access=1" in l for l in lines)  # log.access is off by default
