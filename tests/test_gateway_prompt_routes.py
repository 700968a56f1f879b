"""Managed prompts on every chat route, through the in-process gateway with the real client
packages: OpenAI chat completions and Responses, Anthropic messages, Ollama /api/chat; named
in the body and as a virtual ``prompt:`` model; where each part of a version lands in each
protocol's body; every refusal in the calling protocol's own error shape, nothing forwarded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from conftest import LiveGateway
from prompt_routes_support import (
    CLAUDE,
    LLAMA,
    Mocks,
    new_id,
    prompt_gateway,
    running_mocks,
    wait_record,
)

PROMPT_FIELDS = {"prompt_id", "prompt_version", "prompt_label", "inputs"}


@pytest.fixture(scope="module")
def mocks() -> Iterator[Mocks]:
    with running_mocks() as m:
        yield m


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mocks: Mocks) -> Iterator[LiveGateway]:
    with prompt_gateway(tmp_path_factory.mktemp("prompt-routes"), mocks) as live:
        yield live


@pytest.fixture(autouse=True)
def fresh(mocks: Mocks) -> None:
    mocks.reset()


def oai(gw: LiveGateway, base: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=base or gw.openai_url, api_key="sk-test", max_retries=0)


def claude_client(gw: LiveGateway) -> anthropic.Anthropic:
    base = f"{gw.base_url}/anthropic/{gw.org.write_key}"
    return anthropic.Anthropic(base_url=base, api_key="sk-ant-test", max_retries=0)


def ollama_client(gw: LiveGateway) -> ollama.Client:
    return ollama.Client(host=f"{gw.base_url}/ollama/{gw.org.write_key}")


# -- OpenAI Responses ---------------------------------------------------------------------


def test_responses_body_form_input_string_after_the_prompt(gw: LiveGateway, mocks: Mocks) -> None:
    rid = new_id()
    with oai(gw) as client:
        client.responses.create(
            model="",
            input="and keep it short",
            instructions="Mine.",
            extra_body={"prompt_id": "summary", "inputs": {"text": "T"}},
            extra_headers={"Helicone-Request-Id": rid},
        )
    seen = mocks.openai.requests[-1]
    assert seen.path == "/v1/responses"
    doc = seen.json
    assert doc["input"] == [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Summarise: T"},
        {"role": "user", "content": "and keep it short"},
    ]
    assert doc["instructions"] == "Mine."  # the client's, untouched
    assert doc["model"] == "gpt-4o-mini" and doc["temperature"] == 0.2
    assert doc["max_output_tokens"] == 50 and "max_tokens" not in doc
    assert not PROMPT_FIELDS & set(doc)
    row = wait_record(gw, rid)
    assert (row["prompt_name"], row["prompt_version"], row["prompt_label"]) == (
        "summary",
        1,
        "production",
    )


def test_responses_virtual_model_maps_params(gw: LiveGateway, mocks: Mocks) -> None:
    mine = [
        {"role": "developer", "content": "Client rules."},
        {"role": "user", "content": "hi"},
    ]
    with oai(gw) as client:
        client.responses.create(model="prompt:helper", input=mine, max_output_tokens=9)  # type: ignore[arg-type]
    doc = mocks.openai.requests[-1].json
    assert doc["input"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        *mine,  # the client's leading developer message joins the prompt's system message
    ]
    assert doc["model"] == "gpt-4o-mini"
    assert doc["max_output_tokens"] == 9  # the client's
    assert doc["top_p"] == 0.9 and doc["temperature"] == 0.3
    assert doc["text"] == {
        "format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}
    }
    assert "stop" not in doc and "seed" not in doc  # no Responses equivalent


# -- OpenAI chat completions, virtual model -------------------------------------------------


def test_chat_virtual_model_system_messages_first(gw: LiveGateway, mocks: Mocks) -> None:
    rid = new_id()
    mine = [
        {"role": "system", "content": "Open WebUI system prompt."},
        {"role": "user", "content": "hello"},
    ]
    with oai(gw) as client:
        client.chat.completions.create(
            model="prompt:helper",
            messages=mine,  # type: ignore[arg-type]
            temperature=1.1,
            extra_headers={"Helicone-Request-Id": rid},
        )
    doc = mocks.openai.requests[-1].json
    assert doc["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        *mine,
    ]
    assert doc["model"] == "gpt-4o-mini"
    assert doc["temperature"] == 1.1 and doc["max_tokens"] == 64 and doc["seed"] == 7
    row = wait_record(gw, rid)
    assert row["prompt_name"] == "helper" and row["prompt_version"] == 1
    assert row["prompt_label"] == "production" and row["prompt_inputs"] == {}
    assert row["model"] == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("model", "first", "label"),
    [
        ("prompt:helper@staging", "V2 a helpful assistant", "staging"),
        ("prompt:helper:2", "V2 a helpful assistant", None),
        ("prompt:helper:1", "You are a helpful assistant.", None),
    ],
)
def test_chat_virtual_model_label_and_version(
    gw: LiveGateway, mocks: Mocks, model: str, first: str, label: str | None
) -> None:
    rid = new_id()
    with oai(gw) as client:
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "x"}],
            max_completion_tokens=5,
            extra_headers={"Helicone-Request-Id": rid},
        )
    doc = mocks.openai.requests[-1].json
    assert doc["messages"][0] == {"role": "system", "content": first}
    assert doc["max_completion_tokens"] == 5 and "max_tokens" not in doc
    row = wait_record(gw, rid)
    assert row["prompt_label"] == label
    assert row["prompt_version"] == (1 if model.endswith(":1") else 2)


# -- Anthropic ----------------------------------------------------------------------------


def test_anthropic_body_form_system_joined_prompt_first(gw: LiveGateway, mocks: Mocks) -> None:
    rid = new_id()
    with claude_client(gw) as client:
        client.messages.create(
            model=CLAUDE,
            max_tokens=1000,
            system="Client system.",
            messages=[{"role": "user", "content": "and briefly"}],
            extra_body={"prompt_id": "summary", "inputs": {"text": "T", "language": "Welsh"}},
            extra_headers={"Helicone-Request-Id": rid},
        )
    seen = mocks.claude.requests[-1]
    doc = seen.json
    assert doc["system"] == "Answer in Welsh.\n\nClient system."
    assert doc["messages"] == [
        {"role": "user", "content": "Summarise: T"},
        {"role": "user", "content": "and briefly"},
    ]
    assert doc["model"] == CLAUDE  # the client's
    assert doc["max_tokens"] == 50  # the version's (the SDK sends one on every call)
    assert doc["temperature"] == 0.2
    assert not PROMPT_FIELDS & set(doc)
    assert "sk-ant-test" in str(seen.headers)  # the client's key, to the upstream it addressed
    row = wait_record(gw, rid)
    assert row["prompt_name"] == "summary" and row["protocol"] == "anthropic"
    assert row["prompt_inputs"] == {"text": "T", "language": "Welsh"}


def test_anthropic_virtual_model_with_system_blocks(gw: LiveGateway, mocks: Mocks) -> None:
    rid = new_id()
    blocks = [{"type": "text", "text": "Client block."}]
    with claude_client(gw) as client:
        message = client.messages.create(
            model="prompt:claude-helper",
            max_tokens=7,
            system=blocks,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"Helicone-Request-Id": rid},
        )
    assert message.content
    doc = mocks.claude.requests[-1].json
    assert doc["model"] == CLAUDE
    assert doc["system"] == [{"type": "text", "text": "Be brief, friend."}, *blocks]
    assert doc["messages"] == [
        {"role": "user", "content": "Context: friend asks."},
        {"role": "user", "content": "hi"},
    ]
    assert doc["max_tokens"] == 40 and doc["temperature"] == 0.5
    assert doc["stop_sequences"] == ["END"]
    row = wait_record(gw, rid)
    assert row["prompt_name"] == "claude-helper" and row["model"] == CLAUDE


def test_anthropic_without_any_max_tokens_is_refused(gw: LiveGateway, mocks: Mocks) -> None:
    url = f"{gw.base_url}/anthropic/{gw.org.write_key}/v1/messages"
    body = {"model": "prompt:claude-only", "messages": [{"role": "user", "content": "x"}]}
    resp = httpx.post(url, json=body, headers={"x-api-key": "k"}, timeout=10)
    assert resp.status_code == 400
    doc = resp.json()
    assert doc["type"] == "error" and doc["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in doc["error"]["message"]
    assert mocks.count() == 0


# -- Ollama -------------------------------------------------------------------------------


def test_ollama_virtual_model_options_and_format(gw: LiveGateway, mocks: Mocks) -> None:
    rid = new_id()
    with ollama.Client(
        host=f"{gw.base_url}/ollama/{gw.org.write_key}", headers={"Helicone-Request-Id": rid}
    ) as client:
        answer = client.chat(
            model="prompt:llama-helper",
            messages=[{"role": "user", "content": "bonjour"}],
            options={"temperature": 0.9},
            stream=False,
        )
    assert answer.message.content
    doc = mocks.llama.requests[-1].json
    assert doc["model"] == LLAMA
    assert doc["messages"] == [
        {"role": "system", "content": "Reply in French."},
        {"role": "user", "content": "bonjour"},
    ]
    assert doc["options"] == {
        "temperature": 0.9,  # the client's
        "top_p": 0.8,
        "seed": 3,
        "stop": ["STOP"],
        "num_predict": 20,
    }
    assert doc["format"] == "json"
    row = wait_record(gw, rid)
    assert row["prompt_name"] == "llama-helper" and row["protocol"] == "ollama"
    assert row["model"] == "llama3.2"  # the version's model, as records name it


def test_ollama_body_form_streams(gw: LiveGateway, mocks: Mocks) -> None:
    url = f"{gw.base_url}/ollama/{gw.org.write_key}/api/chat"
    body = {
        "model": LLAMA,
        "prompt_id": "summary",
        "inputs": {"text": "T"},
        "messages": [{"role": "user", "content": "more"}],
        "format": {"type": "object"},
    }
    with httpx.stream("POST", url, json=body, timeout=10) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert resp.status_code == 200 and '"done":true' in lines[-1].replace(" ", "")
    doc = mocks.llama.requests[-1].json
    assert doc["messages"] == [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Summarise: T"},
        {"role": "user", "content": "more"},
    ]
    assert doc["model"] == LLAMA and doc["format"] == {"type": "object"}
    assert doc["options"] == {"temperature": 0.2, "num_predict": 50}
    assert not PROMPT_FIELDS & set(doc)


def test_ollama_show_describes_the_model_behind_a_prompt(gw: LiveGateway, mocks: Mocks) -> None:
    with ollama_client(gw) as client:
        shown = client.show("prompt:llama-helper")
        assert shown.details is not None and shown.details.family == "llama"
        assert mocks.llama.requests[-1].json == {"model": LLAMA}
        before = mocks.count()
        with pytest.raises(ollama.ResponseError) as info:
            client.show("prompt:nope")
    assert info.value.status_code == 404 and "'nope'" in info.value.error
    assert mocks.count() == before


# -- refusals, in each protocol's shape -----------------------------------------------------

CASES = [
    ({"prompt_id": "nope"}, 404, "'nope'"),
    ({"prompt_id": "summary", "prompt_label": "staging"}, 404, "'staging'"),
    ({"prompt_id": "summary", "prompt_version": 9}, 404, "no version 9"),
    ({"prompt_id": "summary", "inputs": {}}, 400, "missing variable 'text'"),
    ({"prompt_id": "summary", "inputs": ["text"]}, 400, "inputs must be a JSON object"),
    ({"prompt_id": "summary", "inputs": {"text": "x" * 70_000}}, 413, "larger than"),
    ({"model": "prompt:nope"}, 404, "'nope'"),
    ({"model": "prompt:helper@canary"}, 404, "'canary'"),
    ({"model": "prompt:helper:9"}, 404, "no version 9"),
    ({"model": "prompt:needs-topic"}, 400, "missing variable 'topic'"),
    ({"model": "prompt:helper:x"}, 400, "prompt:<name>"),
    ({"model": "prompt:helper", "prompt_id": "summary"}, 400, "not both"),
]
ROUTES = {
    "openai-chat": ("/v1/{key}/chat/completions", "openai"),
    "openai-responses": ("/v1/{key}/responses", "openai"),
    "anthropic": ("/anthropic/{key}/v1/messages", "anthropic"),
    "ollama": ("/ollama/{key}/api/chat", "ollama"),
    "ollama-openai": ("/ollama/{key}/v1/chat/completions", "openai"),
}


def error_of(protocol: str, resp: httpx.Response) -> str:
    """The error message, checking the body is the protocol's own error shape."""
    doc: dict[str, Any] = resp.json()
    if protocol == "openai":
        assert set(doc) == {"error"}
        assert set(doc["error"]) == {"message", "type", "param", "code"}
        assert doc["error"]["type"] == "invalid_request_error"
        return str(doc["error"]["message"])
    if protocol == "anthropic":
        assert doc["type"] == "error" and set(doc["error"]) == {"type", "message"}
        assert doc["error"]["type"] in (
            "invalid_request_error",
            "not_found_error",
            "request_too_large",
        )
        return str(doc["error"]["message"])
    assert set(doc) == {"error"} and isinstance(doc["error"], str)
    return doc["error"]


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize(("body", "status", "words"), CASES)
def test_refusals_in_each_protocols_shape_nothing_forwarded(
    gw: LiveGateway, mocks: Mocks, route: str, body: dict[str, Any], status: int, words: str
) -> None:
    path, protocol = ROUTES[route]
    rid = new_id()
    payload = {"model": LLAMA, "max_tokens": 5, "messages": [], **body}
    if route == "openai-responses":
        payload["input"] = payload.pop("messages")
    headers = {"Authorization": "Bearer sk-test", "Helicone-Request-Id": rid}
    url = gw.base_url + path.format(key=gw.org.write_key)
    resp = httpx.post(url, json=payload, headers=headers, timeout=10)
    assert resp.status_code == status, resp.text
    assert words in error_of(protocol, resp)
    assert mocks.count() == 0
    row = wait_record(gw, rid)
    assert row["status"] == status and row["prompt_name"] is None


def test_plain_bodies_with_the_markers_in_text_pass_untouched(
    gw: LiveGateway, mocks: Mocks
) -> None:
    says = [{"role": "user", "content": 'say "prompt:x" and "prompt_id"'}]
    body = {"model": LLAMA, "messages": says, "stream": False}
    url = f"{gw.base_url}/ollama/{gw.org.write_key}/api/chat"
    assert httpx.post(url, json=body, timeout=10).status_code == 200
    assert mocks.llama.requests[-1].json == body
