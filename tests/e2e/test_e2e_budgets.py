"""Budgets, as users run them: `heliograph serve` with budgets from config.toml and the API.

The bound the README states: the amounts reserved by admitted requests never exceed the
limit, so a request budget of 10 admits exactly 10 of 200 concurrent requests, and a USD
budget worth 10 capped requests admits at most 10 (and their real spend stays within it). It
is checked with 200 concurrent requests from the real ``openai`` client through two worker
processes, on SQLite, on PostgreSQL, and with Redis as the shared ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from e2e_harness import Heliograph, new_id

from conftest import create_pg_database, free_port, redis_ready
from heliograph.pricing.book import PriceBook
from heliograph.pricing.cost import Usage
from heliograph.pricing.tokens import estimate_prompt_tokens
from mock_anthropic import MockAnthropic
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

CONCURRENT = 200
WORTH = 10
MAX_TOKENS = 16
REDIS_URL = os.environ.get("HELIOGRAPH_TEST_REDIS", "redis://127.0.0.1:6379/14")
MODEL = "gpt-4o-mini"


def _messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Say {text}"}]


def estimate_nusd(text: str) -> int:
    """What the gateway reserves for one capped request (prompt counted offline + cap)."""
    body = {"model": MODEL, "messages": _messages(text), "max_tokens": MAX_TOKENS}
    prompt = estimate_prompt_tokens(body, "/chat/completions", MODEL) or 0
    cost = PriceBook().cost(provider="openai", model=MODEL, usage=Usage(prompt, MAX_TOKENS))
    assert cost.known and cost.total_nusd
    return cost.total_nusd


@pytest.fixture
def opened() -> Iterator[Callable[[Any], Any]]:
    """Keeps the clients a test makes, and closes them (and their sockets) at its end."""
    made: list[Any] = []

    def keep(client: Any) -> Any:
        made.append(client)
        return client

    yield keep
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


def _serve(home: Path, env: dict[str, str], config: str = "", workers: int = 1) -> Heliograph:
    home.mkdir(parents=True, exist_ok=True)
    if config:
        (home / "config.toml").write_text(config)
    return Heliograph(home, free_port(), workers=workers, env=env).start()


def _admin(serve: Heliograph) -> dict[str, str]:
    return {"Authorization": f"Bearer {serve.admin_key}"}


def _budgets(serve: Heliograph) -> dict[str, dict[str, Any]]:
    resp = httpx.get(f"{serve.base_url}/api/v1/budgets", headers=_admin(serve), timeout=15)
    assert resp.status_code == 200, resp.text
    return {b["name"]: b for b in resp.json()["data"]}


def _wait_budget(serve: Heliograph, name: str, test: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    budget: dict[str, Any] = {}
    while time.monotonic() < deadline:
        budget = _budgets(serve)[name]
        if test(budget):
            return budget
        time.sleep(0.2)
    raise AssertionError(f"budget {name} never got there: {budget}")


async def _burst(base_url: str, team: str, text: str) -> tuple[int, list[str]]:
    """CONCURRENT chat requests at once; (answered, refusal messages)."""
    limits = httpx.Limits(max_connections=CONCURRENT + 10)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        client = openai.AsyncOpenAI(
            base_url=base_url, api_key="sk-client", http_client=http, max_retries=0
        )

        async def one(i: int) -> str | None:
            try:
                await client.chat.completions.create(
                    model=MODEL,
                    messages=_messages(text),  # type: ignore[arg-type]
                    max_tokens=MAX_TOKENS,
                    extra_headers={"Helicone-Property-Team": team},
                )
            except openai.RateLimitError as exc:
                return str(exc)
            return None

        results = await asyncio.gather(*(one(i) for i in range(CONCURRENT)))
    refusals = [r for r in results if r is not None]
    return CONCURRENT - len(refusals), refusals


BOUND_CONFIG = """\
[[budgets]]
name = "ten-requests"
window = "day"
limit_requests = 10
scope = {{ property = {{ team = "count" }} }}
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redis"])
def test_200_concurrent_clients_against_a_budget_worth_10(
    backend: str, upstream: MockUpstream, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    upstream.recorder.delay_ms = 400  # every admitted request is still in flight at the end
    env = {"HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url}
    drop = None
    if backend == "postgresql":
        url, drop = create_pg_database(request.getfixturevalue("pg_admin"))
        env["HELIOGRAPH_DATABASE_URL"] = url
    if backend == "redis":
        env["HELIOGRAPH_REDIS_URL"] = redis_ready(REDIS_URL)
    serve = _serve(tmp_path / "home", env, BOUND_CONFIG.format(), workers=2)
    try:
        text = f"bounded {new_id()}"
        per_request = estimate_nusd(text)
        limit_nusd = WORTH * per_request + per_request // 2  # 10.5 requests' worth
        made = httpx.post(
            f"{serve.base_url}/api/v1/budgets",
            headers=_admin(serve),
            json={
                "name": "ten-dollars-worth",
                "scope": {"property": {"team": "usd"}, "model": "gpt-4o*"},
                "window": "24h",
                "limit_usd": limit_nusd / 1e9,
                "action": "block",
            },
            timeout=15,
        )
        assert made.status_code == 201, made.text
        time.sleep(2.5)  # the other worker loads it within key_refresh_interval (2 s)
        base = serve.url("v1")

        answered, refusals = asyncio.run(_burst(base, "count", text))
        assert answered == WORTH, f"{answered} requests let through a request budget of 10"
        assert len(refusals) == CONCURRENT - WORTH
        sample = refusals[0]
        assert "Budget 'ten-requests' is used up" in sample and "10 requests" in sample
        assert "resets at" in sample and "per calendar day (UTC)" in sample

        answered_usd, _ = asyncio.run(_burst(base, "usd", text))
        assert 1 <= answered_usd <= WORTH, f"{answered_usd} let through a budget worth 10"

        # Settlement: the writer replaces reservations with the real usage.
        count = _wait_budget(
            serve, "ten-requests", lambda b: b["spent"] == WORTH and b["reserved"] == 0
        )
        assert count["remaining"] == 0 and count["source"] == "config"
        assert 100 in count["crossed"]
        usd = _wait_budget(serve, "ten-dollars-worth", lambda b: b["reserved"] == 0 and b["spent"])
        assert usd["spent"] <= limit_nusd / 1e9 + 1e-12
        refused = serve.api(
            "/api/v1/requests", state="refused", **{"property.team": "count"}, limit=500
        )
        assert refused.status_code == 200, refused.text
        rows = refused.json()["data"]
        _wait_count(serve, {"state": "refused", "property.team": "count"}, CONCURRENT - WORTH)
        rows = serve.api(
            "/api/v1/requests", state="refused", **{"property.team": "count"}, limit=500
        ).json()["data"]
        assert all(r["status"] == 429 and "ten-requests" in (r["error"] or "") for r in rows)
        assert upstream.recorder.calls(text) == WORTH + answered_usd  # refusals never forwarded
    finally:
        upstream.recorder.delay_ms = 0
        serve.stop()
        if drop is not None:
            drop()


def _wait_count(serve: Heliograph, filters: dict[str, str], n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    got = -1
    while time.monotonic() < deadline:
        got = len(serve.api("/api/v1/requests", limit=1000, **filters).json()["data"])
        if got == n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{got} records match {filters}, expected {n}")


def test_token_budget_settles_headers_and_protocol_shapes(
    upstream: MockUpstream, tmp_path: Path, opened: Callable[[Any], Any]
) -> None:
    """A token quota (what a local model needs): the remaining amount in the headers, the
    real tokens settled from the stored record, and a refusal in Anthropic's own shape."""
    claude = MockAnthropic().start()
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_UPSTREAM_ANTHROPIC_URL": claude.base_url,
    }
    serve = _serve(tmp_path / "home", env)
    try:
        made = httpx.post(
            f"{serve.base_url}/api/v1/budgets",
            headers=_admin(serve),
            json={"name": "alice-tokens", "scope": {"user_id": "alice"}, "window": "1h",
                  "limit_tokens": 600},
            timeout=15,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        client = opened(openai.OpenAI(base_url=serve.url("v1"), api_key="sk-x", max_retries=0))
        rid = new_id()
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=_messages("tokens"),  # type: ignore[arg-type]
            max_tokens=100,
            user="alice",
            extra_headers={"Helicone-Request-Id": rid},
        )
        remaining = int(raw.headers["heliograph-budget-remaining"])
        assert raw.headers["heliograph-budget"] == "alice-tokens"
        assert 0 < remaining <= 600 - 100
        assert raw.headers["helicone-ratelimit-limit"] == "600"
        assert raw.headers["helicone-ratelimit-policy"] == "600;w=3600;u=token"
        record = serve.record(rid)
        # With a RateLimit-Policy too, the Helicone headers are the policy's, each sent once.
        both = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=_messages("both"),  # type: ignore[arg-type]
            max_tokens=10,
            user="alice",
            extra_headers={"Helicone-RateLimit-Policy": "50;w=60;s=user"},
        )
        assert both.headers.get_list("helicone-ratelimit-policy") == ["50;w=60;u=request;s=user"]
        assert both.headers.get_list("helicone-ratelimit-limit") == ["50"]
        assert both.headers["heliograph-budget"] == "alice-tokens"
        both_record = serve.record(both.headers["heliograph-id"])
        budget = _wait_budget(serve, "alice-tokens", lambda b: b["reserved"] == 0)
        spent = record["total_tokens"] + both_record["total_tokens"]
        assert budget["spent"] == spent > 0
        assert budget["remaining"] == 600 - spent
        # Another user is not in this budget's scope.
        other = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=_messages("x"),
            user="bob",  # type: ignore[arg-type]
        )
        assert "heliograph-budget" not in other.headers
        # A request whose cap does not fit what is left is refused before it is sent.
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(
                model=MODEL,
                messages=_messages("big"),  # type: ignore[arg-type]
                max_tokens=1000,
                user="alice",
            )
        assert refused.value.status_code == 429
        body = refused.value.body
        assert isinstance(body, dict) and body.get("code") == "budget_exceeded"
        assert "Budget 'alice-tokens' is used up" in str(body.get("message"))
        # Anthropic's shape: {"type": "error", "error": {"type": ..., "message": ...}}.
        httpx.post(
            f"{serve.base_url}/api/v1/budgets",
            headers=_admin(serve),
            json={"name": "claude-none", "scope": {"upstream": "anthropic"}, "window": "day",
                  "limit_requests": 0},
            timeout=15,
        ).raise_for_status()  # fmt: skip
        claude_client = opened(
            anthropic.Anthropic(base_url=serve.url("anthropic"), api_key="sk-ant-x", max_retries=0)
        )
        with pytest.raises(anthropic.RateLimitError) as refused_a:
            claude_client.messages.create(
                model="claude-3-5-haiku-latest",
                max_tokens=50,
                messages=[{"role": "user", "content": "hi"}],
            )
        a_body = refused_a.value.body
        assert isinstance(a_body, dict) and a_body["type"] == "error"
        assert "Budget 'claude-none' is used up" in a_body["error"]["message"]
        assert claude.recorder.snapshot() == []
        # Listing models is no model call: an exhausted budget leaves it alone.
        httpx.post(
            f"{serve.base_url}/api/v1/budgets",
            headers=_admin(serve),
            json={"name": "nothing-left", "window": "day", "limit_requests": 0},
            timeout=15,
        ).raise_for_status()
        assert [m.id for m in client.models.list()]
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=MODEL, messages=_messages("x"), user="bob")  # type: ignore[arg-type]
    finally:
        serve.stop()
        claude.stop()


def test_unpriced_models_blocked_by_default_and_flagged_when_allowed(
    upstream: MockUpstream, tmp_path: Path, opened: Callable[[Any], Any]
) -> None:
    config = """\
[[budgets]]
name = "monthly-usd"
window = "month"
timezone = "Europe/Berlin"
limit_usd = 5
"""
    env = {"HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url}
    serve = _serve(tmp_path / "block", env, config)
    try:
        client = opened(openai.OpenAI(base_url=serve.url("v1"), api_key="sk-x", max_retries=0))
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(
                model="mystery-model-7",
                messages=_messages("hi"),  # type: ignore[arg-type]
            )
        assert "'mystery-model-7' has no known price" in str(refused.value)
        priced = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=_messages("hi"),  # type: ignore[arg-type]
        )
        assert priced.headers["helicone-ratelimit-policy"].endswith("u=cents")
        assert float(priced.headers["heliograph-budget-remaining"]) < 5
    finally:
        serve.stop()
    serve = _serve(tmp_path / "allow", {**env, "HELIOGRAPH_BUDGET_UNPRICED": "allow"}, config)
    try:
        client = opened(openai.OpenAI(base_url=serve.url("v1"), api_key="sk-x", max_retries=0))
        rid = new_id()
        client.chat.completions.create(
            model="mystery-model-7",
            messages=_messages("hi"),  # type: ignore[arg-type]
            extra_headers={"Helicone-Request-Id": rid},
        )
        assert serve.record(rid)["budget_note"] == "unpriced: monthly-usd"
        assert serve.listed(rid, budget_note="unpriced: monthly-usd") is not None
    finally:
        serve.stop()


def test_orphaned_reservation_expires(
    upstream: MockUpstream, tmp_path: Path, opened: Callable[[Any], Any]
) -> None:
    """A gateway killed mid-request never settles its reservation: it frees itself."""
    config = """\
budget_reservation_ttl_s = 4

[[budgets]]
name = "one-at-a-time"
window = "day"
limit_requests = 1
"""
    env = {"HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url}
    home = tmp_path / "home"
    serve = _serve(home, env, config)
    client = opened(
        openai.OpenAI(base_url=serve.url("v1"), api_key="sk-x", max_retries=0, timeout=30)
    )

    def hanging() -> None:
        with contextlib.suppress(openai.APIError):
            client.chat.completions.create(
                model=MODEL,
                messages=_messages("hang"),  # type: ignore[arg-type]
                extra_headers={"x-mock-delay-ms": "20000"},
            )

    thread = threading.Thread(target=hanging, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while upstream.recorder.calls("Say hang") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.recorder.calls("Say hang") == 1
    serve.kill()  # gateway, writer and all: nothing settles
    assert serve.proc is not None
    serve.proc.wait(10)
    killed_at = time.monotonic()
    serve.start()
    try:
        client = opened(openai.OpenAI(base_url=serve.url("v1"), api_key="sk-x", max_retries=0))
        with pytest.raises(openai.RateLimitError):  # still held by the dead gateway's lease
            client.chat.completions.create(model=MODEL, messages=_messages("too soon"))  # type: ignore[arg-type]
        time.sleep(max(0.0, 4.5 - (time.monotonic() - killed_at)))
        answer = client.chat.completions.create(model=MODEL, messages=_messages("later"))  # type: ignore[arg-type]
        assert answer.choices[0].message.content
    finally:
        serve.stop()
        thread.join(1)


def test_bad_budget_definitions_are_refused(upstream: MockUpstream, tmp_path: Path) -> None:
    env = {"HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url}
    serve = _serve(tmp_path / "home", env)
    try:
        url = f"{serve.base_url}/api/v1/budgets"
        cases = [
            ({"name": "a", "window": "day"}, "exactly one of limit_usd"),
            ({"name": "a", "window": "fortnight", "limit_usd": 1}, "window:"),
            ({"name": "a", "window": "day", "limit_requests": 1.5}, "whole number"),
            ({"name": "a", "window": "day", "limit_usd": -1}, "limit_usd: a number >= 0"),
            ({"name": "a", "window": "day", "limit_usd": 1, "action": "warn"}, "action:"),
            ({"name": "a", "window": "day", "limit_usd": 1, "timezone": "Mars/Olympus"},
             "timezone:"),
            ({"name": "a", "window": "day", "limit_usd": 1, "scope": {"team": "x"}},
             "scope: unknown field(s) team"),
            ({"name": "a", "window": "day", "limit_usd": 1, "scope": {"key_id": "nope"}},
             "scope.key_id: no key"),
        ]  # fmt: skip
        for body, message in cases:
            resp = httpx.post(url, headers=_admin(serve), json=body, timeout=15)
            assert resp.status_code == 400, (body, resp.text)
            assert message in resp.json()["error"]["message"], (body, resp.text)
        write = {"Authorization": f"Bearer {serve.write_key}"}
        good = {"name": "ok", "window": "day", "limit_usd": 1}
        assert httpx.post(url, headers=write, json=good, timeout=15).status_code == 403
        assert httpx.get(url, headers=write, timeout=15).status_code == 403
        made = httpx.post(url, headers=_admin(serve), json=good, timeout=15)
        assert made.status_code == 201
        again = httpx.post(url, headers=_admin(serve), json=good, timeout=15)
        assert again.status_code == 409
        gone = httpx.delete(f"{url}/{made.json()['id']}", headers=_admin(serve), timeout=15)
        assert gone.status_code == 204
        assert _budgets(serve) == {}
    finally:
        serve.stop()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.toml").write_text('[[budgets]]\nname = "x"\nwindow = "year"\nlimit_usd = 1\n')
    failing = Heliograph(bad, free_port(), env=env)
    with pytest.raises(RuntimeError) as exited:
        failing.start(timeout=30)
    assert "budget 1: window:" in str(exited.value)
