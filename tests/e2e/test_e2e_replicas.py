"""Two replicas, as the README deploys them: two `heliograph serve` subprocesses (own homes,
ports and spools, each with its writer) sharing one PostgreSQL and one Redis.

Traffic to both lands once each; a rate limit, a cache entry, a key revocation, a prompt label
move and a budget made through one replica hold on the other; one replica SIGKILLed under
load loses nothing it answered, and the requests it had in flight are recorded `interrupted`
when it restarts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from e2e_harness import Heliograph, wait_for

from conftest import create_pg_database, free_port, redis_ready
from mock_upstream import MockUpstream
from test_durability import Load, all_records

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/12"
REFRESH = 0.3


@pytest.fixture
def replicas(
    tmp_path: Path, mock: MockUpstream, pg_admin: str
) -> Iterator[tuple[Heliograph, Heliograph]]:
    url, drop = create_pg_database(pg_admin)
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": mock.url,
        "HELIOGRAPH_DATABASE_URL": url,
        "HELIOGRAPH_REDIS_URL": redis_ready(REDIS_URL),
        "HELIOGRAPH_KEY_REFRESH_INTERVAL": str(REFRESH),
    }
    a = Heliograph(tmp_path / "a", free_port(), env=env).start()
    b = Heliograph(tmp_path / "b", free_port(), env=env)
    b.write_key, b.admin_key = a.write_key, a.admin_key  # one store: printed by the first only
    try:
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        client.close()
        drop()


def chat(
    server: Heliograph, key: str | None = None, text: str = "hi", **headers: str
) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return httpx.post(
        f"{server.base_url}/v1/{key or server.write_key}/chat/completions",
        json=body,
        headers={"authorization": "Bearer sk-p", **headers},
        timeout=30,
    )


def admin(server: Heliograph, method: str, path: str, body: Any = None) -> Any:
    resp = server.admin_request(method, path, body)
    assert resp.status_code < 300, resp.text
    return resp.json()


def tagged(server: Heliograph, tag: str, expect: int) -> list[dict[str, Any]]:
    """The stored records carrying property ``run=<tag>``, once there are ``expect`` (and
    half a second later, so one stored twice would show)."""
    wait_for(f"{expect} records tagged {tag}", lambda: len(tagged_now(server, tag)) >= expect)
    time.sleep(0.5)
    return tagged_now(server, tag)


def tagged_now(server: Heliograph, tag: str) -> list[dict[str, Any]]:
    resp = httpx.get(
        f"{server.base_url}/api/v1/requests",
        params={"property.run": tag, "limit": 1000},
        headers={"Authorization": f"Bearer {server.admin_key}"},
        timeout=15,
    )
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def test_two_replicas_share_one_store_and_one_redis(
    replicas: tuple[Heliograph, Heliograph], mock: MockUpstream
) -> None:
    a, b = replicas
    # traffic to both lands once each, readable from either
    sent = {chat(a, **{"Helicone-Property-Run": "both"}).headers["heliograph-id"] for _ in range(5)}
    sent |= {
        chat(b, **{"Helicone-Property-Run": "both"}).headers["heliograph-id"] for _ in range(5)
    }
    rows = tagged(b, "both", 10)
    assert sorted(r["id"] for r in rows) == sorted(sent) and len(sent) == 10

    # a rate limit counts across both (Redis): 3 per minute for this user
    limited = {"Helicone-RateLimit-Policy": "3;w=60;s=user", "Helicone-User-Id": "rl-user"}
    statuses = [chat(server, **limited).status_code for server in (a, b, a, b, a)]
    assert statuses == [200, 200, 200, 429, 429]

    # a response cached through one is a hit on the other
    cache = {"Helicone-Cache-Enabled": "true"}
    assert chat(a, text="cache me", **cache).headers["helicone-cache"] == "MISS"
    upstream_calls = len(mock.requests)
    assert chat(b, text="cache me", **cache).headers["helicone-cache"] == "HIT"
    assert len(mock.requests) == upstream_calls

    # a key made and revoked through one replica is refused by the other
    made = admin(a, "POST", "/api/v1/keys", {"name": "temp", "scope": "write"})
    assert chat(b, key=made["key"]).status_code == 200
    admin(a, "DELETE", f"/api/v1/keys/{made['id']}")
    wait_for(
        "the revocation on the other replica", lambda: chat(b, key=made["key"]).status_code == 401
    )

    # a label moved through one replica is what the other renders
    admin(a, "POST", "/api/v1/prompts", {"name": "greet", "description": ""})
    for text in ("Version one.", "Version two."):
        version = {"messages": [{"role": "system", "content": text}], "model": "gpt-4o-mini"}
        admin(a, "POST", "/api/v1/prompts/greet/versions", version)
    admin(a, "PUT", "/api/v1/prompts/greet/labels/production", {"version": 1})

    def rendered_version() -> int:
        body = {"prompt_id": "greet", "messages": [{"role": "user", "content": "hello"}]}
        resp = httpx.post(
            f"{b.base_url}/v1/{b.write_key}/chat/completions",
            json=body,
            headers={"authorization": "Bearer sk-p"},
            timeout=30,
        )
        if resp.status_code == 404:  # the other replica has not seen the label yet
            return 0
        assert resp.status_code == 200, resp.text
        return int(b.record(resp.headers["heliograph-id"])["prompt_version"])

    wait_for("v1 on the other replica", lambda: rendered_version() == 1)
    admin(a, "PUT", "/api/v1/prompts/greet/labels/production", {"version": 2})
    wait_for("the moved label on the other replica", lambda: rendered_version() == 2)

    # a budget made through one replica holds across both: 4 requests, whoever serves them
    budget = {
        "name": "four",
        "scope": {"user_id": "budget-user"},
        "window": "day",
        "limit_requests": 4,
        "action": "block",
    }
    admin(a, "POST", "/api/v1/budgets", budget)
    time.sleep(REFRESH * 4)  # every worker of both replicas has the budget
    user = {"Helicone-User-Id": "budget-user"}
    results = [chat(server, **user).status_code for server in (a, b) * 4]
    assert results.count(200) == 4 and results.count(429) == 4, results


def test_a_replica_killed_under_load_loses_nothing_it_answered(
    replicas: tuple[Heliograph, Heliograph],
) -> None:
    a, b = replicas
    url = f"{b.base_url}/v1/{b.write_key}/chat/completions"
    with Load(url, threads=6) as load:
        time.sleep(2.5)
        b.kill()
    assert load.completed, "nothing completed before the kill"
    in_flight = load.sent - set(load.completed)
    assert in_flight, "nothing was in flight at the kill"
    dead = [p for p in (b.home / "spool").iterdir() if p.is_dir()]
    assert dead, "the killed replica left no spool directory"
    b.start()  # the restarted replica's writer drains its spool, marking in-flight requests
    wait_for("the dead spool drained", lambda: not any(p.exists() for p in dead), 60)
    rows = all_records(a.base_url, a.admin_key)  # read through the other replica
    by_tid = {r["properties"].get("testid"): r for r in rows if r["properties"].get("testid")}
    assert len(by_tid) == len([r for r in rows if r["properties"].get("testid")])
    for tid, rid in load.completed.items():
        assert tid in by_tid, f"answered request {tid} lost"
        assert by_tid[tid]["id"] == rid and by_tid[tid]["state"] == "ok"
    interrupted = [r for r in by_tid.values() if r["state"] == "interrupted"]
    assert interrupted, "the requests in flight at the kill are not recorded as interrupted"
    assert {r["properties"]["testid"] for r in interrupted} <= in_flight
