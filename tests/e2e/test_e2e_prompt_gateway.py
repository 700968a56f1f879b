"""A managed prompt used by production traffic through `heliograph serve` with two workers,
configured by environment variables: the real `openai` package names the prompt in
`extra_body`, the mock upstream receives the rendered chat, the record names the prompt, and a
label moved through the API reaches both worker processes within the refresh interval."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from e2e_harness import Heliograph, answers_by_worker, new_id, post_chat, serving, worker_of

from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

REFRESH = 0.3
VERSION = {
    "messages": [
        {"role": "system", "content": "Answer in {{language}}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "model": "gpt-4o-mini",
    "params": {"temperature": 0.2},
    "variables": {"language": "English", "text": None},
}
ROUNDS = 8  # fresh connections each: both workers answer some of them


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("prompt-gateway-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_KEY_REFRESH_INTERVAL": str(REFRESH),
    }
    with serving(home, env, workers=2) as server:
        yield server


def admin(serve: Heliograph, method: str, path: str, body: Any) -> None:
    resp = serve.admin_request(method, path, body)
    assert resp.status_code < 300, resp.text


def ask(serve: Heliograph, rid: str, text: str) -> None:
    """One chat on a new client (a new connection, so any worker may answer)."""
    with openai.OpenAI(base_url=serve.url("v1"), api_key="sk-test", max_retries=0) as client:
        client.chat.completions.create(
            model="",
            messages=[],
            extra_body={"prompt_id": "summary", "inputs": {"text": text}},
            extra_headers={"Helicone-Request-Id": rid},
        )


def sent(upstream: MockUpstream, text: str) -> dict[str, Any]:
    found = [r.json for r in upstream.requests if text.encode() in r.body]
    assert len(found) == 1
    doc: dict[str, Any] = found[0]
    return doc


def test_prompt_in_the_body_and_a_label_move_across_workers(
    serve: Heliograph, upstream: MockUpstream
) -> None:
    admin(serve, "POST", "/api/v1/prompts", {"name": "summary", "description": ""})
    admin(serve, "POST", "/api/v1/prompts/summary/versions", VERSION)
    v2 = {**VERSION, "messages": [{"role": "system", "content": "V2: {{text}}"}], "model": "m2"}
    admin(serve, "POST", "/api/v1/prompts/summary/versions", v2)
    admin(serve, "PUT", "/api/v1/prompts/summary/labels/production", {"version": 1})
    time.sleep(REFRESH * 4)

    rids = [new_id() for _ in range(ROUNDS)]
    for i, rid in enumerate(rids):
        ask(serve, rid, f"first-{i}")
        doc = sent(upstream, f"first-{i}")
        assert doc["messages"] == [
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": f"Summarise: first-{i}"},
        ]
        assert doc["model"] == "gpt-4o-mini" and doc["temperature"] == 0.2
        assert "prompt_id" not in doc and "inputs" not in doc
    record = serve.record(rids[0])
    assert record["prompt_name"] == "summary" and record["prompt_version"] == 1
    assert record["prompt_label"] == "production"
    assert record["prompt_inputs"] == {"text": "first-0"}
    assert serve.listed(rids[0], prompt_name="summary", prompt_version=1) is not None

    admin(serve, "PUT", "/api/v1/prompts/summary/labels/production", {"version": 2})
    time.sleep(REFRESH * 4)
    seen = per_worker(serve, upstream)
    assert len(seen) == 2, f"requests reached {len(seen)} worker(s)"
    for pid, docs in seen.items():
        for text, doc in docs:
            assert doc["messages"] == [{"role": "system", "content": f"V2: {text}"}], pid
            assert doc["model"] == "m2", pid


def per_worker(serve: Heliograph, upstream: MockUpstream) -> dict[int, list[tuple[str, Any]]]:
    """Prompt requests until each worker process (found by the socket it accepted) answered
    two: what the upstream received for each, by worker."""

    def ask(conn: http.client.HTTPConnection) -> tuple[int, tuple[str, Any]]:
        text = new_id()
        body = orjson.dumps({"prompt_id": "summary", "inputs": {"text": text}})
        assert post_chat(conn, serve, body, "sk-test") == 200
        return worker_of(serve, conn), (text, sent(upstream, text))

    return answers_by_worker(serve, ask)
