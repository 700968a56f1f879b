"""Grouping and filtering by managed prompt in the API, on both dialects: the analytics
breakdown by prompt_name and prompt_version (and both as filters), cost groups, and a
version that is not a number refused."""

from __future__ import annotations

import time
from typing import Any

from conftest import LiveGateway
from heliograph.store.engine import make_engine
from query_support import insert, row

NOW = int(time.time() * 1000)


def _records(org: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, version, n, cost in (("summary", 1, 2, 1_000), ("summary", 2, 3, 2_000)):
        for _ in range(n):
            rec = row(org, len(out), created_at=NOW - 60_000 + len(out))
            rec |= {"prompt_name": name, "prompt_version": version}
            rec |= {"cost_known": True, "cost_nusd": cost, "prompt_tokens": 10}
            out.append(rec)
    for _ in range(4):  # no prompt
        out.append(row(org, len(out), created_at=NOW - 60_000 + len(out)))
    return out


def test_breakdowns_and_costs_by_prompt(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        insert(engine, _records(gw.org.id))
    finally:
        engine.dispose()
    window = {"since": str(NOW - 3_600_000), "until": str(NOW + 1000)}

    def get(path: str, **params: str) -> Any:
        resp = gw.api(path, **window, **params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    by_name = get("/api/v1/analytics/breakdown", dimension="prompt_name")["data"]
    assert [(r["key"], r["requests"]) for r in by_name] == [("summary", 5), (None, 4)]
    by_version = get(
        "/api/v1/analytics/breakdown", dimension="prompt_version", prompt_name="summary"
    )["data"]
    assert [(r["key"], r["requests"], r["cost_usd"]) for r in by_version] == [
        (2, 3, 6e-6),
        (1, 2, 2e-6),
    ]
    one = get("/api/v1/analytics/summary", prompt_name="summary", prompt_version="2")
    assert one["requests"] == 3
    none = get("/api/v1/analytics/summary", prompt_name="", prompt_version="7")
    assert none["requests"] == 0
    costs = get("/api/v1/costs", group_by="prompt_version")["data"]
    assert {r["group"]: r["requests"] for r in costs} == {2: 3, 1: 2, None: 4}
    costs = get("/api/v1/costs", group_by="prompt_name")["data"]
    assert {r["group"]: r["requests"] for r in costs} == {"summary": 5, None: 4}
    bad = gw.api("/api/v1/analytics/summary", prompt_version="two")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"
