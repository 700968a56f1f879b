"""Managed prompts on every chat route of `heliograph serve` (two workers, configured by
environment variables as the README says), driven by the real `openai`, `anthropic` and
`ollama` packages against the byte-faithful mocks: prompt fields in the body, virtual
`prompt:<name>` models in the models lists and in chats, a version's own upstream (the
client's key stays behind), the stored records (prompt fields, the body the upstream
received), and a label move reaching the virtual model in both worker processes."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai
import orjson
import pytest
from e2e_harness import (
    Heliograph,
    answers_by_worker,
    new_id,
    post_chat,
    serving,
    stopping,
    worker_of,
)

from mock_anthropic import MockAnthropic
from mock_ollama import MockOllama
from mock_upstream import MockUpstream, Received
from prompt_routes_support import CLAUDE, CLIENT_KEY, LLAMA, OTHER_KEY, PROMPTS

pytestmark = pytest.mark.slow

REFRESH = 0.3


class Mocks:
    def __init__(self) -> None:
        self.openai = MockUpstream().start()
        self.other = MockUpstream().start()
        self.claude = MockAnthropic().start()
        self.llama = MockOllama().start()
        self.all = (self.openai, self.other, self.claude, self.llama)

    def environment(self) -> dict[str, str]:
        return {
            "HELIOGRAPH_UPSTREAM_OPENAI_URL": self.openai.url,
            "HELIOGRAPH_UPSTREAM_ANTHROPIC_URL": self.claude.base_url,
            "HELIOGRAPH_UPSTREAM_OLLAMA_URL": self.llama.base_url,
            "HELIOGRAPH_UPSTREAM_OTHER_URL": self.other.url,
            "HELIOGRAPH_UPSTREAM_OTHER_API_KEY": OTHER_KEY,
            "HELIOGRAPH_KEY_REFRESH_INTERVAL": str(REFRESH),
        }

    def stop(self) -> None:
        for mock in self.all:
            mock.stop()


@pytest.fixture(scope="module")
def mocks() -> Iterator[Mocks]:
    with stopping(Mocks()) as started:
        yield started


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, mocks: Mocks) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("prompt-routes-home")
    with serving(home, mocks.environment(), workers=2) as server:
        for name, versions in PROMPTS.items():
            admin(server, "POST", "/api/v1/prompts", {"name": name, "description": ""})
            for version in versions:
                admin(server, "POST", f"/api/v1/prompts/{name}/versions", version)
            admin(server, "PUT", f"/api/v1/prompts/{name}/labels/production", {"version": 1})
        time.sleep(REFRESH * 4)
        yield server


def admin(serve: Heliograph, method: str, path: str, body: Any) -> None:
    resp = serve.admin_request(method, path, body)
    assert resp.status_code < 300, resp.text


def stored_body(record: dict[str, Any]) -> Any:
    body = record["request_body"]
    return orjson.loads(body) if isinstance(body, str | bytes) else body


def only(requests: list[Received], text: str) -> Received:
    found = [r for r in requests if text.encode() in r.body]
    assert len(found) == 1, f"{len(found)} requests carry {text!r}"
    return found[0]


def test_openai_package_body_fields_virtual_model_and_models_list(
    serve: Heliograph, mocks: Mocks
) -> None:
    rid, text = new_id(), new_id()
    with openai.OpenAI(base_url=serve.url("v1"), api_key=CLIENT_KEY, max_retries=0) as client:
        ids = [m.id for m in client.models.list().data]
        client.chat.completions.create(
            model="",
            messages=[{"role": "user", "content": "short"}],
            extra_body={"prompt_id": "summary", "inputs": {"text": text}},
            extra_headers={"Helicone-Request-Id": rid},
        )
        vid, vtext = new_id(), new_id()
        client.chat.completions.create(
            model="prompt:helper",
            messages=[{"role": "user", "content": vtext}],
            extra_headers={"Helicone-Request-Id": vid},
        )
    assert "gpt-4o-mini" in ids and {"prompt:summary", "prompt:helper"} <= set(ids)
    assert "prompt:claude-only" not in ids  # its upstream speaks Anthropic

    seen = only(mocks.openai.requests, text).json
    assert seen["messages"] == [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": f"Summarise: {text}"},
        {"role": "user", "content": "short"},
    ]
    record = serve.record(rid)
    assert (record["prompt_name"], record["prompt_version"]) == ("summary", 1)
    assert record["prompt_label"] == "production" and record["prompt_inputs"] == {"text": text}
    assert stored_body(record) == seen

    seen = only(mocks.openai.requests, vtext).json
    assert seen["model"] == "gpt-4o-mini"
    assert seen["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    record = serve.record(vid)
    assert record["prompt_name"] == "helper" and record["model"] == "gpt-4o-mini"
    assert stored_body(record) == seen


def test_anthropic_package_body_fields_and_virtual_model(serve: Heliograph, mocks: Mocks) -> None:
    rid, vid, text, vtext = new_id(), new_id(), new_id(), new_id()
    base = serve.url("anthropic")
    with anthropic.Anthropic(base_url=base, api_key=CLIENT_KEY, max_retries=0) as client:
        client.messages.create(
            model=CLAUDE,
            max_tokens=500,
            system="Mine.",
            messages=[{"role": "user", "content": "go"}],
            extra_body={"prompt_id": "summary", "inputs": {"text": text}},
            extra_headers={"Helicone-Request-Id": rid},
        )
        reply = client.messages.create(
            model="prompt:claude-helper",
            max_tokens=500,
            messages=[{"role": "user", "content": vtext}],
            extra_headers={"Helicone-Request-Id": vid},
        )
    assert reply.content
    seen = only(mocks.claude.requests, text).json
    assert seen["system"] == "Answer in English.\n\nMine."
    assert seen["messages"][0] == {"role": "user", "content": f"Summarise: {text}"}
    assert seen["max_tokens"] == 50
    record = serve.record(rid)
    assert record["prompt_name"] == "summary" and stored_body(record) == seen

    seen = only(mocks.claude.requests, vtext).json
    assert seen["model"] == CLAUDE and seen["system"] == "Be brief, friend."
    assert seen["max_tokens"] == 40
    record = serve.record(vid)
    assert record["prompt_name"] == "claude-helper" and record["protocol"] == "anthropic"
    assert stored_body(record) == seen


def test_ollama_package_list_and_chat(serve: Heliograph, mocks: Mocks) -> None:
    rid, text = new_id(), new_id()
    host = serve.url("ollama")
    with ollama.Client(host=host) as client:
        names = [m.model for m in client.list().models]
    with ollama.Client(host=host, headers={"Helicone-Request-Id": rid}) as client:
        answer = client.chat(
            model="prompt:llama-helper", messages=[{"role": "user", "content": text}]
        )
    assert answer.message.content
    assert LLAMA in names and "prompt:llama-helper" in names
    assert "prompt:elsewhere" not in names  # its upstream speaks OpenAI
    seen = only(mocks.llama.requests, text).json
    assert seen["model"] == LLAMA
    assert seen["messages"][0] == {"role": "system", "content": "Reply in French."}
    assert seen["options"]["num_predict"] == 20 and seen["format"] == "json"
    record = serve.record(rid)
    assert record["prompt_name"] == "llama-helper" and record["protocol"] == "ollama"
    assert stored_body(record) == seen


def test_a_versions_upstream_gets_its_own_key_not_the_clients(
    serve: Heliograph, mocks: Mocks
) -> None:
    rid, text = new_id(), new_id()
    with openai.OpenAI(base_url=serve.url("v1"), api_key=CLIENT_KEY, max_retries=0) as client:
        client.chat.completions.create(
            model="prompt:elsewhere",
            messages=[{"role": "user", "content": text}],
            extra_headers={"Helicone-Request-Id": rid},
        )
    seen = only(mocks.other.requests, text)
    assert seen.headers["authorization"] == f"Bearer {OTHER_KEY}"
    assert CLIENT_KEY not in str(seen.headers)
    assert not [r for r in mocks.openai.requests if text.encode() in r.body]
    record = serve.record(rid)
    assert record["served_by"] == "other" and record["prompt_name"] == "elsewhere"


def test_a_label_move_reaches_the_virtual_model_in_both_workers(
    serve: Heliograph, mocks: Mocks
) -> None:
    admin(serve, "PUT", "/api/v1/prompts/helper/labels/production", {"version": 2})
    time.sleep(REFRESH * 4)
    seen = per_worker(serve, mocks.openai)
    assert len(seen) == 2, f"requests reached {len(seen)} worker(s)"
    for pid, firsts in seen.items():
        assert firsts and all(f == "V2 a helpful assistant" for f in firsts), pid


def per_worker(serve: Heliograph, upstream: MockUpstream) -> dict[int, list[str]]:
    """Virtual-model chats on fresh connections until each worker answered two: the first
    message the upstream received for each, by worker process."""

    def ask(conn: http.client.HTTPConnection) -> tuple[int, str]:
        text = new_id()
        body = orjson.dumps(
            {"model": "prompt:helper", "messages": [{"role": "user", "content": text}]}
        )
        assert post_chat(conn, serve, body, CLIENT_KEY) == 200
        pid = worker_of(serve, conn)
        return pid, only(upstream.requests, text).json["messages"][0]["content"]

    return answers_by_worker(serve, ask)


def test_bad_prompt_input_through_each_package_is_refused_and_recorded(
    serve: Heliograph, mocks: Mocks
) -> None:
    """What the real packages raise for each bad input, and that nothing went upstream while
    the refusal itself is stored."""
    marker = new_id()
    says = [{"role": "user", "content": marker}]
    before = sum(len(m.requests) for m in mocks.all)
    refused: list[tuple[str, int]] = []
    with openai.OpenAI(base_url=serve.url("v1"), api_key=CLIENT_KEY, max_retries=0) as client:
        cases: list[tuple[dict[str, Any], type[openai.APIStatusError], int, str]] = [
            ({"prompt_id": "nope"}, openai.NotFoundError, 404, "'nope'"),
            ({"prompt_id": "summary", "inputs": {}}, openai.BadRequestError, 400, "'text'"),
            ({"prompt_id": "summary", "inputs": "text"}, openai.BadRequestError, 400, "object"),
            (
                {"prompt_id": "summary", "inputs": {"text": "x" * 70_000}},
                openai.APIStatusError,
                413,
                "larger than",
            ),
            ({"prompt_id": "summary", "prompt_version": 9}, openai.NotFoundError, 404, "9"),
        ]
        for extra, error, status, words in cases:
            rid = new_id()
            with pytest.raises(error) as info:
                client.chat.completions.create(
                    model="",
                    messages=says,
                    extra_body=extra,
                    extra_headers={"Helicone-Request-Id": rid},
                )
            assert info.value.status_code == status and words in info.value.message
            refused.append((rid, status))
        rid = new_id()
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(
                model="prompt:helper@canary",
                messages=says,
                extra_headers={"Helicone-Request-Id": rid},
            )
        assert "'canary'" in info.value.message
        refused.append((rid, 404))
    with anthropic.Anthropic(
        base_url=serve.url("anthropic"), api_key=CLIENT_KEY, max_retries=0
    ) as claude:
        rid = new_id()
        with pytest.raises(anthropic.BadRequestError) as bad:
            claude.messages.create(
                model=CLAUDE,
                max_tokens=10,
                messages=says,
                extra_body={"prompt_id": "summary", "inputs": {}},
                extra_headers={"Helicone-Request-Id": rid},
            )
        assert "'text'" in bad.value.message
        assert isinstance(bad.value.body, dict) and bad.value.body["type"] == "error"
        refused.append((rid, 400))
    rid = new_id()
    llama = ollama.Client(host=serve.url("ollama"), headers={"Helicone-Request-Id": rid})
    with llama, pytest.raises(ollama.ResponseError) as gone:
        llama.chat(model="prompt:nope", messages=says)
    assert gone.value.status_code == 404 and "'nope'" in gone.value.error
    refused.append((rid, 404))

    assert sum(len(m.requests) for m in mocks.all) == before  # nothing forwarded
    for rid, status in refused:
        record = serve.record(rid)
        assert record["status"] == status and record["state"] == "error", record
        assert record["error"] and record["prompt_name"] is None, record
