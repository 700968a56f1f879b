"""The online evaluation API over real HTTP: scopes, org isolation, validation (filter fields
named by the Requests page's parser, sample rates in (0, 1], evaluator specs), edits and
status; and the scores a tick stores showing on the record through the requests API."""

from __future__ import annotations

from typing import Any

import httpx
from openai import OpenAI

from conftest import LiveGateway
from heliograph.evals import online
from heliograph.store.engine import make_engine

RULE = {
    "evaluator": {"name": "has-mock", "kind": "contains", "config": {"values": ["mock upstream"]}},
    "filter": {"model": "gpt-4o-mini"},
    "sample_rate": 1.0,
}


def call(gw: LiveGateway, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, gw.base_url + path, json=body, headers=headers, timeout=15)


def test_rules_scopes_validation_and_isolation(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    admin, read, write = gw.org.admin_key, gw.org.read_key, gw.org.write_key
    for key in (read, write):
        assert call(gw, "POST", "/api/v1/online-evals", key, RULE).status_code == 403
    assert call(gw, "GET", "/api/v1/online-evals", write).status_code == 403
    made = call(gw, "POST", "/api/v1/online-evals", admin, RULE)
    assert made.status_code == 201, made.text
    rule = made.json()
    assert rule["name"] == "has-mock" and rule["filter"] == {"model": "gpt-4o-mini"}
    assert rule["enabled"] is True and rule["created_by"].startswith("key:")
    assert call(gw, "POST", "/api/v1/online-evals", admin, RULE).status_code == 409
    bad = [
        ("filter", {"modle": "x"}, "filter.modle"),
        ("filter", {"latency_ms_gte": "fast"}, "filter.latency_ms_gte"),
        ("sample_rate", 0, "sample_rate"),
        ("sample_rate", 1.5, "sample_rate"),
        ("sample_rate", True, "sample_rate"),
        ("evaluator", {"name": "x", "kind": "vibes"}, "evaluator.kind"),
        ("evaluator", {"name": "x", "kind": "regex", "config": {"pattern": "("}}, "evaluator."),
        ("colour", "red", "colour"),
    ]
    for i, (key, value, field) in enumerate(bad):
        body = {**RULE, "name": f"n-{i}", key: value}
        resp = call(gw, "POST", "/api/v1/online-evals", admin, body)
        assert resp.status_code == 400, (key, resp.text)
        assert field in resp.json()["error"]["message"], (key, resp.text)
    path = f"/api/v1/online-evals/{rule['id']}"
    assert call(gw, "GET", path, read).json()["id"] == rule["id"]
    other = gw.other.admin_key
    assert call(gw, "GET", path, gw.other.read_key).status_code == 404
    assert call(gw, "PATCH", path, other, {"enabled": False}).status_code == 404
    assert call(gw, "DELETE", path, other).status_code == 404
    assert call(gw, "GET", "/api/v1/online-evals", gw.other.read_key).json()["data"] == []
    assert call(gw, "PATCH", path, read, {"enabled": False}).status_code == 403
    patched = call(gw, "PATCH", path, admin, {"enabled": False, "sample_rate": 0.25})
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False and patched.json()["sample_rate"] == 0.25
    assert call(gw, "PATCH", path, admin, {"sample_rate": 0}).status_code == 400
    assert call(gw, "PATCH", path, admin, {"filter": {"nope": "1"}}).status_code == 400
    status = call(gw, "GET", path + "/status", read).json()
    assert (status["queued"], status["done"], status["errors"]) == (0, 0, 0)
    assert call(gw, "GET", "/api/v1/online-evals/not-an-id", read).status_code == 404
    assert call(gw, "DELETE", path, admin).status_code == 204
    assert call(gw, "GET", path, read).status_code == 404


def test_a_tick_scores_matching_records(gateway: LiveGateway) -> None:
    gw = gateway
    made = call(gw, "POST", "/api/v1/online-evals", gw.org.admin_key, RULE)
    assert made.status_code == 201, made.text
    rule_id = made.json()["id"]
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        # the rule starts at its creation: move its cursor back a little for this test
        from sqlalchemy import update

        from heliograph.store.schema import online_eval_rules

        with engine.begin() as conn:
            conn.execute(
                update(online_eval_rules)
                .where(online_eval_rules.c.id == rule_id)
                .values(cursor="0:")
            )
        client = OpenAI(base_url=gw.openai_url, api_key="sk-test", max_retries=0)
        for model in ("gpt-4o-mini", "gpt-4o-mini", "other-model"):
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        rows = gw.wait_records(3)
        report = online.run_once(engine, "test-worker", lag_s=0)
        assert (report.enqueued, report.scored, report.errors) == (2, 2, 0)
    finally:
        engine.dispose()
    for row in rows:
        record = gw.record(row["id"])
        if row["model"] == "gpt-4o-mini":
            assert record["scores"] == {"has-mock": 1}, record["scores"]
        else:
            assert record["scores"] == {}
    status = call(gw, "GET", f"/api/v1/online-evals/{rule_id}/status", gw.org.read_key).json()
    assert (status["queued"], status["done"], status["errors"]) == (0, 2, 0)
    assert status["last_run_at"] is not None
