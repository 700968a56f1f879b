""" "Save as prompt" on a request page: OpenAI chat, Anthropic messages and Ollama chat records
become prompts (or new versions) with their messages and parameters in OpenAI's words; bad
names and taken names are refused in the form; viewers cannot save."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from conftest import LiveGateway, gateway_settings
from heliograph.web.save_prompt import Unsaveable, draft, params_of
from mock_anthropic import MockAnthropic
from mock_ollama import MockOllama
from mock_upstream import MockUpstream
from web_support import WebClient, add_user

TOOL = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def ollama() -> Iterator[MockOllama]:
    server = MockOllama().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def claude() -> Iterator[MockAnthropic]:
    server = MockAnthropic().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gw(
    tmp_path: Path, mock: MockUpstream, ollama: MockOllama, claude: MockAnthropic
) -> Iterator[LiveGateway]:
    mock.reset()
    upstreams = {
        "ollama": {"url": ollama.base_url, "protocol": "ollama"},
        "claude": {"url": claude.base_url, "protocol": "anthropic"},
    }
    gw = LiveGateway(
        gateway_settings(tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", mock.url, upstreams=upstreams)
    ).start()
    add_user(gw, "admin@example.com")
    add_user(gw, "viewer@example.com", role="viewer")
    try:
        yield gw
    finally:
        gw.stop()


def send(gw: LiveGateway, path: str, body: dict[str, Any], **headers: str) -> str:
    resp = httpx.post(f"{gw.base_url}{path}", json=body, headers=headers, timeout=15)
    assert resp.status_code == 200, resp.text
    rid = resp.headers["heliograph-id"]
    deadline = time.monotonic() + 10
    while gw.api(f"/api/v1/requests/{rid}").status_code != 200:
        assert time.monotonic() < deadline, "the record was not stored"
        time.sleep(0.05)
    return rid


def versions(gw: LiveGateway, name: str) -> list[dict[str, Any]]:
    resp = gw.api(f"/api/v1/prompts/{name}/versions")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def save(web: WebClient, rid: str, **fields: str) -> httpx.Response:
    return web.post(f"/requests/{rid}/save-prompt", fields)


def test_an_openai_chat_becomes_a_prompt_then_a_new_version(gw: LiveGateway) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You answer in {{language}}."},
            {"role": "user", "content": "Why is the sky blue?"},
        ],
        "temperature": 0.3,
        "max_completion_tokens": 50,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "response_format": {"type": "json_object"},
        "tools": [TOOL],
        "user": "not a prompt parameter",
    }
    rid = send(gw, f"/v1/{gw.org.write_key}/chat/completions", body)
    with WebClient(gw, "admin@example.com") as web:
        page = web.get(f"/requests/{rid}")
        assert f'href="/requests/{rid}/save-prompt"' in page.text
        form = web.get(f"/requests/{rid}/save-prompt")
        assert form.status_code == 200 and "You answer in {{language}}." in form.text
        made = save(web, rid, mode="new", name="sky", description="Why blue", message="from a log")
        assert made.status_code == 303 and made.headers["location"] == "/prompts/sky"
        again = save(web, rid, mode="existing", existing="sky", message="again")
        assert again.status_code == 303 and again.headers["location"] == "/prompts/sky"
    second, first = versions(gw, "sky")
    assert (first["version"], second["version"]) == (1, 2)
    assert first["messages"] == body["messages"]
    assert first["model"] == "gpt-4o-mini" and first["upstream"] == "openai"
    assert first["params"] == {
        "temperature": 0.3,
        "max_tokens": 50,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "response_format": {"type": "json_object"},
        "tools": [TOOL],
    }
    assert first["variables"] == {"language": None}
    assert first["message"] == "from a log" and second["message"] == "again"
    assert first["created_by"].startswith("user:")
    prompt = gw.api("/api/v1/prompts/sky").json()
    assert prompt is not None
    listed = {p["name"]: p for p in gw.api("/api/v1/prompts").json()["data"]}
    assert listed["sky"]["description"] == "Why blue"


def test_an_anthropic_record_puts_its_system_first_in_openai_words(gw: LiveGateway) -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "max_tokens": 64,
        "temperature": 0.5,
        "stop_sequences": ["STOP"],
        "tools": [
            {"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}
        ],
    }
    rid = send(
        gw,
        f"/claude/{gw.org.write_key}/v1/messages",
        body,
        **{"x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01"},
    )
    with WebClient(gw, "admin@example.com") as web:
        made = save(web, rid, mode="new", name="brief", message="")
    assert made.status_code == 303, made.text
    (version,) = versions(gw, "brief")
    assert version["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert version["model"] == "claude-sonnet-4-6" and version["upstream"] == "claude"
    assert version["params"] == {
        "max_tokens": 64,
        "temperature": 0.5,
        "stop": ["STOP"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "parameters": {"type": "object"},
                    "description": "Weather",
                },
            }
        ],
    }


def test_an_ollama_chat_brings_its_options(gw: LiveGateway) -> None:
    body = {
        "model": "llama3.2",
        "stream": False,
        "messages": [
            {"role": "system", "content": "Talk like a pirate."},
            {"role": "user", "content": "Hi"},
        ],
        "options": {"temperature": 0.1, "num_predict": 20, "seed": 3, "stop": ["\n"]},
        "format": "json",
    }
    rid = send(gw, f"/ollama/{gw.org.write_key}/api/chat", body)
    with WebClient(gw, "admin@example.com") as web:
        made = save(web, rid, mode="new", name="pirate")
    assert made.status_code == 303, made.text
    (version,) = versions(gw, "pirate")
    assert version["messages"] == body["messages"]
    assert version["model"] == "llama3.2" and version["upstream"] == "ollama"
    assert version["params"] == {
        "temperature": 0.1,
        "max_tokens": 20,
        "seed": 3,
        "stop": ["\n"],
        "response_format": {"type": "json_object"},
    }


def test_bad_and_taken_names_and_bad_templates_are_refused_in_the_form(gw: LiveGateway) -> None:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    rid = send(gw, f"/v1/{gw.org.write_key}/chat/completions", chat)
    with WebClient(gw, "admin@example.com") as web:
        assert save(web, rid, mode="new", name="taken").status_code == 303
        taken = save(web, rid, mode="new", name="taken", description="kept")
        assert taken.status_code == 400
        assert str(escape("A prompt named 'taken' already exists")) in taken.text
        assert 'value="kept"' in taken.text  # the user's input is kept
        bad = save(web, rid, mode="new", name="Not A Slug")
        assert bad.status_code == 400 and "lowercase letters" in bad.text
        long = save(web, rid, mode="new", name="long", description="x" * 2001)
        assert long.status_code == 400 and "at most 2000" in long.text
        nowhere = save(web, rid, mode="existing", existing="nope")
        assert nowhere.status_code == 400 and "Choose one of your prompts" in nowhere.text
        braces = {**chat, "messages": [{"role": "user", "content": "{{ not closed"}]}
        rid2 = send(gw, f"/v1/{gw.org.write_key}/chat/completions", braces)
        broken = save(web, rid2, mode="new", name="braces")
        assert broken.status_code == 400 and "unclosed" in broken.text
    assert [p["name"] for p in gw.api("/api/v1/prompts").json()["data"]] == ["taken"]
    assert len(versions(gw, "taken")) == 1


def test_viewers_cannot_save_and_see_no_button(gw: LiveGateway) -> None:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    rid = send(gw, f"/v1/{gw.org.write_key}/chat/completions", chat)
    with WebClient(gw, "viewer@example.com") as web:
        assert 'id="save-prompt"' not in web.get(f"/requests/{rid}").text
        assert web.get(f"/requests/{rid}/save-prompt").status_code == 403
        assert save(web, rid, mode="new", name="nope").status_code == 403
    assert gw.api("/api/v1/prompts").json()["data"] == []


def test_what_a_record_cannot_be() -> None:
    base = {"method": "POST", "kind": "llm", "protocol": "openai", "upstream": "openai"}
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with pytest.raises(Unsaveable, match="more than text"):
        draft({**base, "request_body": {"messages": [{"role": "user", "content": [image]}]}})
    with pytest.raises(Unsaveable, match="role 'tool'"):
        draft({**base, "request_body": {"messages": [{"role": "tool", "content": "42"}]}})
    with pytest.raises(Unsaveable, match="not stored"):
        draft({**base, "request_body": None})
    with pytest.raises(Unsaveable, match="Only LLM calls"):
        draft({**base, "method": "GET", "request_body": {}})
    assert params_of("ollama", {"format": {"type": "object"}}) == {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": {"type": "object"}},
        }
    }
