"""The experiments and evaluators API over HTTP: scopes (admin writes, read reads, write keys
neither), another organization's experiment absent, the dry run's estimate (and what has no
price said so), refusals as 400/404, cancel, and saved evaluators used by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from conftest import LiveGateway
from experiment_engine_support import add_dataset, live_store
from heliograph.store.engine import make_engine
from mock_upstream import MockUpstream


@pytest.fixture
def live(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    with live_store(f"sqlite:///{tmp_path / 's.db'}", tmp_path, mock) as gateway:
        yield gateway


@pytest.fixture
def engine(live: LiveGateway) -> Iterator[Engine]:
    eng = make_engine(live.settings.sqlalchemy_url)
    yield eng
    eng.dispose()


def call(live: LiveGateway, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        live.base_url + path,
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    )


def test_scopes_isolation_dry_run_and_cancel(live: LiveGateway, engine: Engine) -> None:
    org, other = live.org, live.other
    add_dataset(engine, org.id, "d", [{"inputs": {"input": f"q{i}"}} for i in range(5)])
    body = {"name": "e", "dataset": "d", "variants": ["model:mock/gpt-4o"], "evaluators": ["exact"]}
    for key in (org.read_key, org.write_key):
        assert call(live, "POST", "/api/v1/experiments", key, body).status_code == 403
    dry = call(live, "POST", "/api/v1/experiments", org.admin_key, {**body, "dry_run": True})
    assert dry.status_code == 200, dry.text
    estimate = dry.json()["estimate"]
    assert estimate["cells"] == 5 and estimate["estimated_cost_usd"] > 0
    assert estimate["unpriced"] == [] and estimate["evaluators"] == ["exact"]
    assert call(live, "GET", "/api/v1/experiments", org.read_key).json()["data"] == []
    unpriced = {**body, "variants": ["model:mock/no-such-model-xyz"], "dry_run": True}
    shown = call(live, "POST", "/api/v1/experiments", org.admin_key, unpriced).json()
    assert shown["estimate"]["unpriced"] == [
        "model:mock/no-such-model-xyz: no-such-model-xyz on mock"
    ]
    made = call(live, "POST", "/api/v1/experiments", org.admin_key, {**body, "cost_cap_usd": 1})
    assert made.status_code == 201, made.text
    exp = made.json()
    assert exp["status"] == "queued" and exp["cells_total"] == 5 and exp["cost_cap_usd"] == 1
    assert exp["results_url"] == f"/api/v1/experiments/{exp['id']}/results"
    read = call(live, "GET", f"/api/v1/experiments/{exp['id']}", org.read_key).json()
    assert read["variants"][0]["name"] == "model:mock/gpt-4o" and read["progress"] == 0
    assert call(live, "GET", f"/api/v1/experiments/{exp['id']}", other.admin_key).status_code == 404
    assert call(live, "GET", "/api/v1/experiments", other.read_key).json()["data"] == []
    assert call(live, "GET", "/api/v1/experiments", org.write_key).status_code == 403
    path = f"/api/v1/experiments/{exp['id']}/cancel"
    assert call(live, "POST", path, other.admin_key).status_code == 404
    assert call(live, "POST", path, org.read_key).status_code == 403
    stopped = call(live, "POST", path, org.admin_key).json()
    assert stopped["status"] == "stopped" and stopped["stop_reason"] == "cancelled"
    assert call(live, "GET", "/api/v1/experiments/not-an-id", org.read_key).status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"dataset": "missing"}, 404, "no dataset"),
        ({"variants": []}, 400, "variants"),
        ({"variants": ["gpt-4o"]}, 400, "prompt:<name>@<label>"),
        ({"variants": ["prompt:nope@production"]}, 400, "no version labelled"),
        ({"evaluators": ["regex:("]}, 400, "does not compile"),
        ({"evaluators": ["nobody-saved-me"]}, 400, "no evaluator"),
        ({"concurrency": 0}, 400, "concurrency"),
        ({"cost_cap_usd": -1}, 400, "cost_cap_usd"),
        ({"sample": {"sample": 0}}, 400, "give exactly one"),
        ({"extra": 1}, 400, "unknown field"),
    ],
)
def test_refusals(
    live: LiveGateway, engine: Engine, change: dict[str, Any], status: int, words: str
) -> None:
    add_dataset(engine, live.org.id, "d", [{"inputs": {"input": "q"}}])
    body = {"name": "e", "dataset": "d", "variants": ["model:mock/gpt-4o"], **change}
    resp = call(live, "POST", "/api/v1/experiments", live.org.admin_key, body)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["error"]["message"]


def test_sample_of_requests_becomes_a_pinned_dataset(live: LiveGateway, engine: Engine) -> None:
    for i in range(4):
        resp = httpx.post(
            f"{live.base_url}/mock/{live.org.write_key}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"s{i}"}]},
            headers={"Helicone-Property-Topic": "support" if i < 3 else "sales"},
        )
        assert resp.status_code == 200
    live.wait_records(4)
    body = {
        "name": "Rerun support",
        "sample": {"filter": {"property.topic": "support"}, "sample": 2},
        "variants": ["model:mock/gpt-4o"],
    }
    made = call(live, "POST", "/api/v1/experiments", live.org.admin_key, body)
    assert made.status_code == 201, made.text
    source = made.json()["source"]
    assert made.json()["cells_total"] == 2 and source["dataset"].startswith("sample-rerun-support-")
    items = call(live, "GET", f"/api/v1/datasets/{source['dataset']}/items", live.org.read_key)
    assert [i["inputs"]["messages"][0]["content"] for i in items.json()["data"]] == ["s2", "s1"]


def test_saved_evaluators(live: LiveGateway, engine: Engine) -> None:
    org = live.org
    spec = {"name": "has-hello", "kind": "contains", "config": {"values": ["Hello"]}}
    assert call(live, "POST", "/api/v1/evaluators", org.read_key, spec).status_code == 403
    made = call(live, "POST", "/api/v1/evaluators", org.admin_key, spec)
    assert made.status_code == 201, made.text
    assert made.json()["config"] == {"values": ["Hello"], "mode": "all", "case_sensitive": True}
    assert call(live, "POST", "/api/v1/evaluators", org.admin_key, spec).status_code == 409
    bad = {"name": "x", "kind": "regex", "config": {"pattern": "("}}
    assert call(live, "POST", "/api/v1/evaluators", org.admin_key, bad).status_code == 400
    listed = call(live, "GET", "/api/v1/evaluators", org.read_key).json()["data"]
    assert [e["name"] for e in listed] == ["has-hello"]
    assert call(live, "GET", "/api/v1/evaluators/has-hello", live.other.read_key).status_code == 404
    changed = {"kind": "contains", "config": {"values": ["Bye"]}}
    put = call(live, "PUT", "/api/v1/evaluators/has-hello", org.admin_key, changed)
    assert put.status_code == 200 and put.json()["config"]["values"] == ["Bye"]
    add_dataset(engine, org.id, "d", [{"inputs": {"input": "q"}}])
    body = {
        "name": "e",
        "dataset": "d",
        "variants": ["model:mock/gpt-4o"],
        "evaluators": ["has-hello"],
    }
    exp = call(live, "POST", "/api/v1/experiments", org.admin_key, body).json()
    assert exp["evaluators"][0]["config"]["values"] == ["Bye"]  # copied at creation
    assert call(live, "DELETE", "/api/v1/evaluators/has-hello", org.admin_key).status_code == 204
    assert call(live, "GET", "/api/v1/evaluators/has-hello", org.read_key).status_code == 404
    again = call(live, "GET", f"/api/v1/experiments/{exp['id']}", org.read_key).json()
    assert again["evaluators"][0]["config"]["values"] == ["Bye"]
