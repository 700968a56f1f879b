"""Every documented filter of every read endpoint changes the answer, on both dialects, and an
unknown parameter is a 400 instead of unfiltered data that looks filtered."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, delete

from conftest import LiveGateway
from heliograph.api.openapi import document
from heliograph.store import analytics
from heliograph.store.engine import make_engine
from heliograph.store.schema import requests
from query_support import T0, dataset, insert, row

HOUR = 3_600_000
# r0..r3 of ``dataset`` (r3 is kind "other", so analytics never count it); x9 is another org's.
WINDOW = {"since": str(T0 - HOUR), "until": str(T0 + HOUR)}


@pytest.fixture
def data(gateway_any: LiveGateway) -> tuple[LiveGateway, dict[str, str]]:
    engine = make_engine(gateway_any.settings.sqlalchemy_url)
    try:
        ids = dataset(engine, gateway_any.org.id, gateway_any.other.id)
    finally:
        engine.dispose()
    return gateway_any, {v: k for k, v in ids.items()}


def _names(records: list[dict[str, Any]], names: dict[str, str]) -> set[str]:
    return {names[r["id"]] for r in records}


REQUEST_FILTERS: list[tuple[dict[str, str], set[str]]] = [
    ({}, {"r0", "r1", "r2", "r3"}),
    ({"model": "gpt-4o"}, {"r0"}),
    ({"provider": "anthropic"}, {"r2"}),
    ({"user_id": "bob"}, {"r1"}),
    ({"session_id": "s1"}, {"r0"}),
    ({"status": "500"}, {"r1"}),
    ({"state": "error"}, {"r1", "r3"}),
    ({"kind": "other"}, {"r3"}),
    ({"since": str(T0 + 1000)}, {"r1", "r2", "r3"}),
    ({"until": str(T0 + 1000)}, {"r0"}),
    ({"property.team": "Red"}, {"r0"}),
    ({"filter": '{"request_response_rmt": {"latency": {"gt": 200}}}'}, {"r1"}),
    ({"model": "gpt-4o", "user_id": "bob"}, set()),
]


def test_request_list_and_export_filters(data: tuple[LiveGateway, dict[str, str]]) -> None:
    gw, names = data
    for params, expected in REQUEST_FILTERS:
        listed = gw.api("/api/v1/requests", **params)
        assert listed.status_code == 200, (params, listed.text)
        assert _names(listed.json()["data"], names) == expected, params
        jsonl = gw.api("/api/v1/requests/export", **params)
        assert jsonl.status_code == 200, (params, jsonl.text)
        lines = [orjson.loads(line) for line in jsonl.text.splitlines()]
        assert _names(lines, names) == expected, params
        table = gw.api("/api/v1/requests/export", format="csv", **params)
        assert _names(list(csv.DictReader(io.StringIO(table.text))), names) == expected, params
    first = gw.api("/api/v1/requests", limit=1).json()
    assert len(first["data"]) == 1 and first["next_cursor"]
    second = gw.api("/api/v1/requests", limit=1, cursor=first["next_cursor"]).json()
    assert second["data"][0]["id"] != first["data"][0]["id"]
    plain = orjson.loads(gw.api("/api/v1/requests/export", model="gpt-4o").text)
    bodies = gw.api("/api/v1/requests/export", model="gpt-4o", include_bodies="true").text
    assert "request_body" not in plain and "request_body" in orjson.loads(bodies)


def test_cost_filters(data: tuple[LiveGateway, dict[str, str]]) -> None:
    gw, _ = data
    by_model = gw.api("/api/v1/costs").json()
    assert {r["group"] for r in by_model["data"]} == {"gpt-4o", "gpt-4o-mini", "claude-3_5%sonnet"}
    groups = {
        "provider": {"openai", "anthropic"},
        "user_id": {"alice", "bob", None},
        "session_id": {"s1", None},
        "upstream": {"openai", "anthropic"},
        "property.team": {"Red", "blue"},
    }
    for group_by, expected in groups.items():
        resp = gw.api("/api/v1/costs", group_by=group_by)
        assert resp.status_code == 200, resp.text
        assert {r["group"] for r in resp.json()["data"]} == expected, group_by
    day = gw.api("/api/v1/costs", group_by="day").json()["data"]
    assert len(day) >= 1 and len(day[0]["group"]) == 10
    assert len(gw.api("/api/v1/costs", group_by="key_id").json()["data"]) == 1
    later = gw.api("/api/v1/costs", since=str(T0 + 1000)).json()
    assert {r["group"] for r in later["data"]} == {"gpt-4o-mini", "claude-3_5%sonnet"}
    earlier = gw.api("/api/v1/costs", until=str(T0 + 1000)).json()
    assert {r["group"] for r in earlier["data"]} == {"gpt-4o"}
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        insert(engine, [row(gw.org.id, 20, model="mystery", created_at=T0 + 5000)])
    finally:
        engine.dispose()
    unpriced = gw.api("/api/v1/costs/unpriced-models").json()["data"]
    assert [m["model"] for m in unpriced] == ["mystery"]
    assert gw.api("/api/v1/costs/unpriced-models", since=str(T0 + 6000)).json()["data"] == []


ANALYTICS_FILTERS: list[tuple[dict[str, str], int]] = [
    ({}, 3),
    ({"model": "gpt-4o"}, 1),
    ({"model": "nonexistent"}, 0),
    ({"provider": "anthropic"}, 1),
    ({"upstream": "openai"}, 2),
    ({"user_id": "bob"}, 1),
    ({"session_id": "s1"}, 1),
    ({"model": "gpt-4o-mini", "user_id": "bob"}, 1),
    ({"model": "gpt-4o", "user_id": "bob"}, 0),
]


def test_analytics_filters(data: tuple[LiveGateway, dict[str, str]]) -> None:
    gw, _ = data
    for params, count in ANALYTICS_FILTERS:
        summary = gw.api("/api/v1/analytics/summary", **WINDOW, **params)
        assert summary.status_code == 200, (params, summary.text)
        assert summary.json()["requests"] == count, params
        series = gw.api("/api/v1/analytics/timeseries", **WINDOW, bucket="1h", **params).json()
        assert sum(p["requests"] for p in series["data"]) == count, params
        rows = gw.api("/api/v1/analytics/breakdown", **WINDOW, **params).json()["data"]
        assert sum(r["requests"] for r in rows) == count, params
    users = gw.api("/api/v1/analytics/summary", **WINDOW, model="gpt-4o-mini").json()
    assert users["active_users"] == 1 and users["errors"] == 1
    models = gw.api("/api/v1/analytics/breakdown", **WINDOW, provider="openai").json()["data"]
    assert {m["key"] for m in models} == {"gpt-4o", "gpt-4o-mini"}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/requests", {"model_name": "x"}),
        ("/api/v1/requests", {"prop": "team=Red"}),
        ("/api/v1/requests", {"property.": "x"}),
        ("/api/v1/requests/export", {"q": "hello"}),
        ("/api/v1/costs", {"model": "gpt-4o"}),
        ("/api/v1/costs/unpriced-models", {"until": "1"}),
        ("/api/v1/analytics/summary", {"dimension": "model"}),
        ("/api/v1/analytics/timeseries", {"kind": "llm"}),
        ("/api/v1/analytics/breakdown", {"models": "gpt-4o"}),
    ],
)
def test_unknown_parameters_are_refused(
    gateway: LiveGateway, path: str, params: dict[str, str]
) -> None:
    resp = gateway.api(path, **params)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "unknown_parameter" and next(iter(params)) in error["message"]


def test_documented_parameters_are_the_accepted_ones(gateway: LiveGateway) -> None:
    """Each parameter in the OpenAPI document is accepted (200) by its endpoint."""
    samples = {"format": "csv", "include_bodies": "false", "group_by": "model", "bucket": "1h"}
    samples |= {"dimension": "model", "limit": "5", "status": "200", "filter": "all"}
    samples |= {"since": "2020-01-01", "until": "2030-01-01"}
    by_type = {"number": "1", "integer": "1", "boolean": "true"}  # typed filters
    for path, methods in document()["paths"].items():
        spec = methods.get("get")
        if spec is None or "{" in path or not path.startswith("/api/v1/"):
            continue
        for param in spec["parameters"]:
            name = param["name"]
            if name == "cursor" or path == "/api/v1/keys":
                continue
            sample = samples.get(name, by_type.get(param["schema"].get("type"), "x"))
            resp = gateway.api(path, **{name: sample})
            assert resp.status_code == 200, (path, name, resp.text)


def test_model_filter_reads_the_model_rollup(engine: Engine) -> None:
    """Whole hours come from the rollups: with the raw rows gone, filtered figures remain."""
    start = (T0 // HOUR - 3) * HOUR
    rows = [
        row("org", i, created_at=start + i * 60_000, model=m, provider=p, upstream=p, user_id=u)
        for i, (m, p, u) in enumerate(
            [
                ("llama3.2", "ollama", "ann"),
                ("llama3.2", "ollama", "bo"),
                ("gpt-4o", "openai", "ann"),
            ]
        )
    ]
    insert(engine, rows)
    with engine.begin() as conn:
        conn.execute(delete(requests))
    until = start + 2 * HOUR
    llama = analytics.summary(engine, "org", start, until, {"model": "llama3.2"})
    assert llama["requests"] == 2
    assert analytics.summary(engine, "org", start, until, {"model": "nonexistent"})["requests"] == 0
    assert analytics.summary(engine, "org", start, until, {"provider": "openai"})["requests"] == 1
    assert analytics.summary(engine, "org", start, until, {"user_id": "ann"})["requests"] == 2
    points = analytics.timeseries(engine, "org", start, until, HOUR, {"model": "llama3.2"})
    assert [p["requests"] for p in points] == [2, 0]
    by_user = analytics.breakdown(engine, "org", "model", start, until, 10, {"upstream": "ollama"})
    assert [(r["key"], r["requests"]) for r in by_user] == [("llama3.2", 2)]
    with pytest.raises(ValueError, match="filters must be among"):
        analytics.summary(engine, "org", start, until, {"password_hash": "x"})
