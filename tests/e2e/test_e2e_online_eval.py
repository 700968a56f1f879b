"""E2E: online evaluation against `heliograph serve` (configured by environment variables as
the README says). Rules are created through the API; traffic goes through the gateway with
the real `openai` package to the mock upstream; the job process that serve starts beside the
writer samples the stored records and scores them, off the request path, and the scores
appear on the records through the read API. An evaluator that cannot score leaves errors on
the rule's status, never a score. A judge rule's judge (a managed prompt) is called by the job
process through the gateway, the mock answering from a script (garbage included): the score and
its reason land on the production record, the judge calls are recorded with ``judge=1`` and
``online_eval=<rule id>`` and are never sampled themselves. Nothing in this test calls the tick itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from e2e_harness import Heliograph, serving
from sqlalchemy import create_engine, text

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
    with serving(home, env) as server:
        yield server


def rule(serve: Heliograph, spec: dict[str, Any], model: str) -> str:
    body = {"evaluator": spec, "filter": {"model": model}, "sample_rate": 1.0}
    made = serve.admin_request("POST", "/api/v1/online-evals", body)
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
    status = serve.admin_request("GET", f"/api/v1/online-evals/{scoring}/status").json()
    assert (status["queued"], status["done"], status["errors"]) == (0, 3, 0), status
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        failed = serve.admin_request("GET", f"/api/v1/online-evals/{failing}/status").json()
        if failed["errors"] == 3:
            break
        time.sleep(0.5)
    assert (failed["done"], failed["errors"]) == (0, 3), failed
    assert "expected output" in failed["recent_errors"][0]["error"]
    assert all("exact" not in s for s in scored.values())  # an error is never a zero


def test_judge_rule_scores_through_the_gateway(serve: Heliograph, upstream: MockUpstream) -> None:
    tag = uuid.uuid4().hex
    prompt = f"rubric-{tag[:8]}"
    made = serve.admin_request("POST", "/api/v1/prompts", {"name": prompt})
    assert made.status_code == 201, made.text
    version = {
        "messages": [{"role": "user", "content": "Judge. Q: {{input}} A: {{output}}"}],
        "model": "gpt-4o-mini",
    }
    versioned = serve.admin_request("POST", f"/api/v1/prompts/{prompt}/versions", version)
    assert versioned.status_code == 201
    labelled = serve.admin_request(
        "PUT", f"/api/v1/prompts/{prompt}/labels/production", {"version": 1}
    )
    assert labelled.status_code == 200, labelled.text
    answers = {
        "good": '{"score": 0.8, "reason": "answers the question"}',
        "junk": "I cannot grade this.",
    }
    # the needles are in the judge's rendered rubric only, never in the production calls
    upstream.recorder.replies.extend((f"Q: user: ask-{k}-{tag}", v) for k, v in answers.items())
    spec = {
        "name": "judged",
        "kind": "llm_judge",
        "config": {"prompt": prompt, "label": "production", "scale": "0-1"},
    }
    body = {"evaluator": spec, "filter": {"property.case": tag}, "sample_rate": 1.0}
    made = serve.admin_request("POST", "/api/v1/online-evals", body)
    assert made.status_code == 201, made.text
    rule_id = made.json()["id"]
    client = openai.OpenAI(
        base_url=serve.url("v1"),
        api_key="sk-test",
        max_retries=0,
        default_headers={"Helicone-Property-Case": tag},
    )
    ids = {}
    for kind in answers:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"ask-{kind}-{tag}"}]
        )
        ids[kind] = raw.headers["heliograph-id"]
    deadline = time.monotonic() + WAIT_S
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = serve.admin_request("GET", f"/api/v1/online-evals/{rule_id}/status").json()
        if status["done"] + status["errors"] == 2:
            break
        time.sleep(0.5)
    assert (status["queued"], status["done"], status["errors"]) == (0, 1, 1), status
    assert "could not be read" in status["recent_errors"][0]["error"]
    assert status["recent_errors"][0]["request_id"] == ids["junk"]
    # (the first test's "says-hello" rule scores these production calls too)
    assert serve.record(ids["good"])["scores"] == {"judged": 0.8, "says-hello": 1}
    assert serve.record(ids["junk"])["scores"] == {"says-hello": 1}  # never a zero
    engine = create_engine(f"sqlite:///{serve.home / 'heliograph.db'}")
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT request_id, name, value, reason FROM request_scores")
            ).all()
    finally:
        engine.dispose()
    mine = [tuple(r) for r in stored if r[0] in ids.values() and r[1] == "judged"]
    assert mine == [(ids["good"], "judged", 0.8, "answers the question")]
    judge_calls = serve.api("/api/v1/requests", **{"property.online_eval": rule_id})
    rows = judge_calls.json()["data"]
    assert len(rows) == 2, rows
    for row in rows:
        record = serve.record(row["id"])
        assert record["properties"]["judge"] == "1"
        assert record["properties"]["online_eval"] == rule_id
        assert record["prompt_name"] == prompt and record["prompt_version"] == 1
        assert record["cost_usd"] > 0 and record["id"] not in ids.values()
    # the judge calls are never sampled themselves, by this rule or any other (the first
    # test's "says-hello" rule takes every gpt-4o-mini call it samples)
    time.sleep(4.0)  # the lag (1 s) and two ticks
    for row in rows:
        assert serve.record(row["id"])["scores"] == {}
    queued = serve.admin_request("GET", f"/api/v1/online-evals/{rule_id}/status").json()
    assert queued["done"] + queued["errors"] + queued["queued"] == 2
