"""E2E: online evaluation against `heliograph serve` (configured by environment variables as
the README says). Rules are created through the API; traffic goes through the gateway with
the real `openai` package to the mock upstream; the job process that serve starts beside the
writer samples the stored records and scores them, off the request path, and the scores
appear on the records through the read API. An evaluator that cannot score leaves errors on
the rule's status, never a score. Nothing in this test calls the tick itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph

from conftest import free_port
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

WAIT_S = 45.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("online-eval-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_ONLINE_EVAL_LAG_S": "1",
    }
    server = Heliograph(home, free_port(), env=env).start()
    try:
        yield server
    finally:
        server.stop()


def api(serve: Heliograph, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {serve.admin_key}"}
    return httpx.request(method, serve.base_url + path, json=body, headers=headers, timeout=15)


def rule(serve: Heliograph, spec: dict[str, Any], model: str) -> str:
    body = {"evaluator": spec, "filter": {"model": model}, "sample_rate": 1.0}
    made = api(serve, "POST", "/api/v1/online-evals", body)
    assert made.status_code == 201, made.text
    rule_id: str = made.json()["id"]
    return rule_id


def test_rules_score_production_traffic(serve: Heliograph) -> None:
    says_hello = {"name": "says-hello", "kind": "contains", "config": {"values": ["Hello"]}}
    needs_expected = {"name": "exact", "kind": "exact_match"}  # no expected: cannot score
    scoring = rule(serve, says_hello, "gpt-4o-mini")
    failing = rule(serve, needs_expected, "gpt-4o-mini")
    client = openai.OpenAI(base_url=serve.url("v1"), api_key="sk-test", max_retries=0)
    ids = {}
    for model in ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini"):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
        ids[raw.headers["heliograph-id"]] = model
    deadline = time.monotonic() + WAIT_S
    scored: dict[str, Any] = {}
    while time.monotonic() < deadline:
        scored = {rid: serve.record(rid)["scores"] for rid in ids}
        if sum(bool(s) for s in scored.values()) >= 3:
            break
        time.sleep(0.5)
    for rid, model in ids.items():
        expected = {"says-hello": 1} if model == "gpt-4o-mini" else {}
        assert scored[rid] == expected, (model, scored)
    status = api(serve, "GET", f"/api/v1/online-evals/{scoring}/status").json()
    assert (status["queued"], status["done"], status["errors"]) == (0, 3, 0), status
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        failed = api(serve, "GET", f"/api/v1/online-evals/{failing}/status").json()
        if failed["errors"] == 3:
            break
        time.sleep(0.5)
    assert (failed["done"], failed["errors"]) == (0, 3), failed
    assert "expected output" in failed["recent_errors"][0]["error"]
    assert all("exact" not in s for s in scored.values())  # an error is never a zero
