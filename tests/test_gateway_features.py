"""Helicone-compatible gateway headers through the real openai package: cache, rate limits,
retries, fallbacks, target URLs, omitted bodies, sessions and model overrides."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import LiveGateway, gateway_settings, redis_ready
from mock_upstream import DEFAULT_TEXT, MockUpstream

REDIS_URL = os.environ.get("HELIOGRAPH_TEST_REDIS", "redis://127.0.0.1:6379/15")
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def chat(gw: LiveGateway, key: str | None = None, **headers: str) -> Any:
    with openai.OpenAI(
        base_url=f"{gw.base_url}/v1/{key or gw.org.write_key}", api_key="sk-p", max_retries=0
    ) as client:
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_headers=headers,
        )


@pytest.fixture
def backup() -> Iterator[MockUpstream]:
    with MockUpstream() as m:
        yield m


@pytest.fixture
def gw(tmp_path: Path, mock: MockUpstream, backup: MockUpstream) -> Iterator[LiveGateway]:
    mock.reset()
    settings = gateway_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'f.db'}",
        mock.url,
        upstreams={"backup": {"url": backup.url}},
    )
    gateway = LiveGateway(settings).start()
    try:
        yield gateway
    finally:
        gateway.stop()


# ------------------------------------------------------------------------------- cache


def test_cache_hit_never_reaches_the_upstream(gw: LiveGateway, mock: MockUpstream) -> None:
    first = chat(gw, **{"Helicone-Cache-Enabled": "true"})
    second = chat(gw, **{"Helicone-Cache-Enabled": "true"})
    assert first.headers["helicone-cache"] == "MISS"
    assert second.headers["helicone-cache"] == "HIT"
    assert len(mock.requests) == 1
    assert second.parse().id == first.parse().id  # the very same stored answer
    assert second.parse().choices[0].message.content == DEFAULT_TEXT
    rows = {r["id"]: r for r in gw.wait_records(2)}
    hit = rows[second.headers["heliograph-id"]]
    miss = rows[first.headers["heliograph-id"]]
    assert hit["cache_hit"] is True and miss["cache_hit"] is False
    assert hit["cost_usd"] == 0 and hit["cost_known"] is True
    assert hit["cost_saved_usd"] == miss["cost_usd"] > 0
    assert hit["prompt_tokens"] == miss["prompt_tokens"]


def test_cache_is_keyed_on_seed_body_and_organization(gw: LiveGateway, mock: MockUpstream) -> None:
    on = {"Helicone-Cache-Enabled": "true"}
    chat(gw, **on)
    assert chat(gw, **on, **{"Helicone-Cache-Seed": "a"}).headers["helicone-cache"] == "MISS"
    assert chat(gw, **on, **{"Helicone-Cache-Seed": "a"}).headers["helicone-cache"] == "HIT"
    assert chat(gw, gw.other.write_key, **on).headers["helicone-cache"] == "MISS"
    assert chat(gw).headers.get("helicone-cache") is None  # not asked: not involved
    assert len(mock.requests) == 4


def test_streams_are_cached_and_replayed_as_streams(gw: LiveGateway, mock: MockUpstream) -> None:
    with openai.OpenAI(base_url=gw.openai_url, api_key="sk-p", max_retries=0) as client:
        texts = []
        for _ in range(2):
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                extra_headers={"Helicone-Cache-Enabled": "true"},
            )
            chunks = list(stream)
            assert all(c.choices for c in chunks)  # the injected usage chunk stays hidden
            texts.append("".join(c.choices[0].delta.content or "" for c in chunks))
    assert texts == [DEFAULT_TEXT, DEFAULT_TEXT]
    assert len(mock.requests) == 1
    rows = gw.wait_records(2)
    assert sorted(r["cache_hit"] for r in rows) == [False, True]
    assert all(r["completion_tokens"] == 5 and r["stream"] for r in rows)


def test_cache_bucket_fills_then_serves_from_the_bucket(
    gw: LiveGateway, mock: MockUpstream
) -> None:
    headers = {"Helicone-Cache-Enabled": "true", "Helicone-Cache-Bucket-Max-Size": "3"}
    ids = [chat(gw, **headers).parse().id for _ in range(3)]
    assert len(mock.requests) == 3 and len(set(ids)) == 3
    served = {chat(gw, **headers).parse().id for _ in range(30)}
    assert len(mock.requests) == 3
    assert served <= set(ids) and len(served) >= 2  # hits spread over the bucket
    bad = chat_raw(gw, {"Helicone-Cache-Enabled": "true", "Helicone-Cache-Bucket-Max-Size": "99"})
    assert bad.status_code == 400


def test_cache_max_age_expires_entries(gw: LiveGateway, mock: MockUpstream) -> None:
    headers = {"Helicone-Cache-Enabled": "true", "Cache-Control": "max-age=1"}
    chat(gw, **headers)
    assert chat(gw, **headers).headers["helicone-cache"] == "HIT"
    time.sleep(1.3)
    assert chat(gw, **headers).headers["helicone-cache"] == "MISS"
    assert len(mock.requests) == 2


def chat_raw(gw: LiveGateway, headers: dict[str, str], key: str | None = None) -> httpx.Response:
    """One chat request through the real openai package (headers as ``extra_headers``); the
    HTTP response whatever its status (the SDK's own retries are off)."""
    with openai.OpenAI(
        base_url=f"{gw.base_url}/v1/{key or gw.org.write_key}", api_key="sk-p", max_retries=0
    ) as client:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                extra_headers=headers,
            )
        except openai.APIStatusError as exc:
            exc.response.read()
            return exc.response
        return raw.http_response


# -------------------------------------------------------------------------- rate limits


def test_rate_limit_by_requests_and_by_user(gw: LiveGateway, mock: MockUpstream) -> None:
    policy = {"Helicone-RateLimit-Policy": "3;w=60;s=user"}
    statuses = [chat_raw(gw, {**policy, "Helicone-User-Id": "alice"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = chat_raw(gw, {**policy, "Helicone-User-Id": "alice"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["helicone-ratelimit-limit"] == "3"
    assert refused.headers["helicone-ratelimit-remaining"] == "0"
    assert refused.headers["helicone-ratelimit-policy"] == "3;w=60;u=request;s=user"
    bob = chat_raw(gw, {**policy, "Helicone-User-Id": "bob"})
    assert bob.status_code == 200 and bob.headers["helicone-ratelimit-remaining"] == "2"
    assert len(mock.requests) == 4  # refused requests never reach the upstream
    rows = gw.wait_records(6)
    assert sorted(r["status"] for r in rows) == [200] * 4 + [429] * 2


def test_bad_rate_limit_policy_is_400(gw: LiveGateway, mock: MockUpstream) -> None:
    for policy in ("ten;w=60", "10;w=5", "10", "10;w=60;u=dollars", "10;w=60;x=1"):
        resp = chat_raw(gw, {"Helicone-RateLimit-Policy": policy})
        assert resp.status_code == 400, policy
        assert resp.json()["error"]["message"]
    assert mock.requests == []


def test_rate_limit_in_cents_counts_recorded_cost(
    tmp_path: Path, mock: MockUpstream, backup: MockUpstream
) -> None:
    # An absurd price makes one request cost about $1.40 (140 cents): a 100-cent budget
    # admits the first request and refuses the next once its cost is recorded.
    settings = gateway_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'c.db'}",
        mock.url,
        prices=[{"model": "gpt-4o-mini", "input_per_mtok": 100000, "output_per_mtok": 0}],
    )
    gw = LiveGateway(settings).start()
    try:
        policy = {"Helicone-RateLimit-Policy": "100;w=3600;u=cents"}
        assert chat_raw(gw, policy).status_code == 200
        [row] = gw.wait_records(1)
        assert row["cost_usd"] == pytest.approx(1.4)
        deadline = time.monotonic() + 10
        status = 200
        while time.monotonic() < deadline and status == 200:
            status = chat_raw(gw, policy).status_code
            time.sleep(0.1)
        assert status == 429
    finally:
        gw.stop()


def _shared_limit(first: LiveGateway, second: LiveGateway, mock: MockUpstream) -> None:
    policy = {"Helicone-RateLimit-Policy": "4;w=60"}
    statuses = []
    for i in range(6):
        gw = first if i % 2 else second
        statuses.append(chat_raw(gw, policy, key=first.org.write_key).status_code)
    assert statuses.count(200) == 4 and statuses.count(429) == 2


def test_rate_limit_shared_by_two_processes_on_one_store(
    tmp_path: Path, mock: MockUpstream
) -> None:
    """Two app instances on one store stand for two worker processes."""
    mock.reset()
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    first = LiveGateway(gateway_settings(tmp_path / "a", db, mock.url)).start()
    second_settings = gateway_settings(tmp_path / "b", db, mock.url)
    second = LiveGateway(second_settings, reuse_orgs_from=first).start()
    try:
        _shared_limit(first, second, mock)
    finally:
        second.stop()
        first.stop()


@pytest.fixture
def redis_url() -> str:
    return redis_ready(REDIS_URL)


def test_rate_limit_and_cache_shared_through_redis(
    tmp_path: Path, mock: MockUpstream, redis_url: str
) -> None:
    """Two replicas with separate stores share counters and cache entries via Redis."""
    mock.reset()
    first = LiveGateway(
        gateway_settings(
            tmp_path / "a", f"sqlite:///{tmp_path / 'a.db'}", mock.url, redis_url=redis_url
        )
    ).start()
    second = LiveGateway(
        gateway_settings(
            tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}", mock.url, redis_url=redis_url
        ),
        reuse_orgs_from=first,
    ).start()
    try:
        _shared_limit(first, second, mock)
        mock.reset()
        cache = {"Helicone-Cache-Enabled": "true", "Helicone-Cache-Seed": uuid.uuid4().hex}
        assert chat_raw(first, cache).headers["helicone-cache"] == "MISS"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if chat_raw(second, cache, key=first.org.write_key).headers["helicone-cache"] == "HIT":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the second replica never saw the first one's cache entry")
        assert len(mock.requests) >= 1
    finally:
        second.stop()
        first.stop()


# ------------------------------------------------------------------- retries, fallbacks


def test_retries_against_a_flaky_upstream(gw: LiveGateway, mock: MockUpstream) -> None:
    key = uuid.uuid4().hex
    resp = chat_raw(
        gw,
        {
            "Helicone-Retry-Enabled": "true",
            "Helicone-Retry-Num": "3",
            "Helicone-Retry-Min-Timeout": "10",
            "Helicone-Retry-Max-Timeout": "50",
            "x-mock-fail-first": "2",
            "x-mock-fail-key": key,
        },
    )
    assert resp.status_code == 200
    assert len(mock.requests) == 3
    [row] = gw.wait_records(1)
    assert row["retries"] == 2 and row["state"] == "ok"
    detail = gw.record(row["id"])
    assert [a["status"] for a in detail["attempts"]] == [503, 503, 200]


def test_retries_give_up_and_honour_retry_after(gw: LiveGateway, mock: MockUpstream) -> None:
    started = time.monotonic()
    resp = chat_raw(
        gw,
        {
            "Helicone-Retry-Enabled": "true",
            "Helicone-Retry-Num": "1",
            "Helicone-Retry-Min-Timeout": "0",
            "Helicone-Retry-Max-Timeout": "5000",
            "x-mock-status": "429",
            "x-mock-retry-after": "1",
        },
    )
    assert resp.status_code == 429
    assert time.monotonic() - started >= 1.0  # waited for Retry-After before the retry
    assert len(mock.requests) == 2
    [row] = gw.wait_records(1)
    assert row["retries"] == 1 and row["state"] == "error"


def test_no_retry_without_the_header(gw: LiveGateway, mock: MockUpstream) -> None:
    assert chat_raw(gw, {"x-mock-status": "503"}).status_code == 503
    assert len(mock.requests) == 1


def test_fallback_to_another_upstream(
    gw: LiveGateway, mock: MockUpstream, backup: MockUpstream
) -> None:
    fallbacks = '[{"upstream": "backup", "onCodes": [500], "bodyKeyOverride": {"model": "gpt-4o"}}]'
    resp = chat_raw(gw, {"Helicone-Fallbacks": fallbacks, "x-mock-status": "500"})
    # The failure header reaches the backup too, so it fails as well: the last answer wins.
    assert resp.status_code == 500 and len(backup.requests) == 1
    backup.reset()
    mock.reset()
    # The primary fails once; the fallback entry's own headers switch that off for the backup.
    fallbacks = (
        '[{"upstream": "backup", "onCodes": [500], "bodyKeyOverride": {"model": "gpt-4o"},'
        ' "headers": {"x-mock-fail-first": "0"}}]'
    )
    flaky = {
        "x-mock-fail-first": "1",
        "x-mock-fail-key": uuid.uuid4().hex,
        "x-mock-fail-status": "500",
    }
    resp = chat_raw(gw, {"Helicone-Fallbacks": fallbacks, **flaky})
    assert resp.status_code == 200
    assert len(mock.requests) == 1 and len(backup.requests) == 1
    assert backup.requests[0].json["model"] == "gpt-4o"
    rows = gw.wait_records(2)
    served = next(r for r in rows if r["id"] == resp.headers["heliograph-id"])
    assert served["served_by"] == "backup"
    detail = gw.record(served["id"])
    assert [(a["upstream"], a["status"]) for a in detail["attempts"]] == [
        ("openai", 500),
        ("backup", 200),
    ]


@pytest.mark.parametrize("own_key", [False, True])
def test_no_credential_of_the_client_follows_to_a_fallback(
    gw: LiveGateway, mock: MockUpstream, backup: MockUpstream, own_key: bool
) -> None:
    """The client's credentials were meant for the upstream it addressed: not its provider
    key, nor a gateway's token, a cookie or a key in the query go on to another upstream,
    whether or not the fallback names a key of its own."""
    entry: dict[str, Any] = {"upstream": "backup", "onCodes": [500]}
    entry["headers"] = {"x-mock-fail-first": "0", "x-fallback-note": "from-the-entry"}
    if own_key:
        entry["headers"]["authorization"] = "Bearer sk-fallback-own"
    headers = {
        "Authorization": "Bearer sk-client-secret",
        "cf-aig-authorization": "Bearer sk-client-secret",
        "x-goog-api-key": "sk-client-secret",
        "cookie": "sid=sk-client-secret",
        "Helicone-Fallbacks": json.dumps([entry]),
        "x-mock-fail-first": "1",
        "x-mock-fail-key": uuid.uuid4().hex,
        "x-mock-fail-status": "500",
    }
    url = f"{gw.base_url}/v1/{gw.org.write_key}/chat/completions?key=sk-client-secret&v=2"
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    resp = httpx.post(url, json=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert len(mock.requests) == 1 and len(backup.requests) == 1
    assert mock.requests[0].headers["cf-aig-authorization"] == "Bearer sk-client-secret"
    seen = backup.requests[0]
    assert "sk-client-secret" not in str(seen.headers) and seen.query == "v=2"
    assert seen.headers["x-fallback-note"] == "from-the-entry"  # the entry's own headers go
    if own_key:
        assert seen.headers["authorization"] == "Bearer sk-fallback-own"


def test_fallback_to_an_undeclared_upstream_is_refused(gw: LiveGateway, mock: MockUpstream) -> None:
    resp = chat_raw(gw, {"Helicone-Fallbacks": '["nowhere"]'})
    assert resp.status_code == 400 and "not configured" in resp.json()["error"]["message"]
    assert mock.requests == []


# ----------------------------------------------------------------------------- targets


def test_target_url_only_to_declared_upstreams(
    gw: LiveGateway, mock: MockUpstream, backup: MockUpstream
) -> None:
    ok = chat_raw(gw, {"Helicone-Target-URL": backup.url})
    assert ok.status_code == 200 and len(backup.requests) == 1 and mock.requests == []
    for target in (
        "https://evil.example.com/v1",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/",
        f"http://user:pw@{backup.url.split('//')[1]}",
    ):
        resp = chat_raw(gw, {"Helicone-Target-URL": target})
        assert resp.status_code == 400, target
        assert resp.json()["error"]["code"] == "invalid_gateway_header"
    assert len(backup.requests) == 1 and mock.requests == []
    rows = gw.wait_records(6)
    assert sorted(r["status"] for r in rows) == [200] + [400] * 5


# ------------------------------------------------------------- privacy and metadata


def test_omitted_bodies_keep_tokens_and_cost(gw: LiveGateway) -> None:
    resp = chat_raw(gw, {"Helicone-Omit-Request": "true", "Helicone-Omit-Response": "true"})
    assert resp.status_code == 200
    [row] = gw.wait_records(1)
    detail = gw.record(row["id"])
    assert detail["request_body"] is None and detail["response_body"] is None
    assert row["prompt_tokens"] == 14 and row["completion_tokens"] == 5
    assert row["cost_known"] is True and row["cost_usd"] > 0


def test_session_path_name_and_model_override(gw: LiveGateway) -> None:
    chat_raw(
        gw,
        {
            "Helicone-Session-Id": "s-42",
            "Helicone-Session-Path": "/plan/step1",
            "Helicone-Session-Name": "Trip planner",
            "Helicone-Model-Override": "gpt-4o",
        },
    )
    [row] = gw.wait_records(1)
    assert row["session_id"] == "s-42"
    detail = gw.record(row["id"])
    assert detail["session_path"] == "/plan/step1" and detail["session_name"] == "Trip planner"
    # gpt-4o prices ($2.50 / $10 per million) instead of gpt-4o-mini's.
    assert row["cost_usd"] == (14 * 2500 + 5 * 10000) / 1e9


def test_rate_limit_shared_by_two_worker_processes(tmp_path: Path, mock: MockUpstream) -> None:
    """`heliograph serve --workers 2`: both OS processes count against one limit."""
    from conftest import free_port
    from serve_process import ServeProcess

    mock.reset()
    serve = ServeProcess(
        tmp_path / "home",
        free_port(),
        HELIOGRAPH_UPSTREAM_OPENAI_URL=mock.url,
        HELIOGRAPH_WORKERS="2",
    ).start()
    try:
        key = serve.key("write key")
        pids = set()
        statuses = []
        for _ in range(30):
            with httpx.Client(timeout=30) as client:  # new connections spread over the workers
                resp = client.post(
                    f"{serve.base_url}/v1/{key}/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": MESSAGES},
                    headers={"authorization": "Bearer sk-p", "Helicone-RateLimit-Policy": "5;w=60"},
                )
            statuses.append(resp.status_code)
        spool_dirs = [p for p in (tmp_path / "home" / "spool").iterdir() if p.is_dir()]
        pids = {p.name.split("-")[0] for p in spool_dirs}
        written = {p.name: sum(f.stat().st_size for f in p.glob("*.seg")) for p in spool_dirs}
        assert all(size > 0 for size in written.values()), f"one worker got nothing: {written}"
    finally:
        serve.stop()
    assert len(pids) == 2, "expected two worker processes"
    assert statuses.count(200) == 5 and statuses.count(429) == 25
    assert len(mock.requests) == 5
