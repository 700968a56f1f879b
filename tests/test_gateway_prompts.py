"""Managed prompts named in an OpenAI chat body, through the in-process gateway on both
stores: rendering and precedence (the client wins), the prompt fields stripped, every refusal
in the OpenAI error shape with nothing forwarded, a label move seen after the refresh, and the
record's prompt fields, filterable like the others."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from conftest import LiveGateway, gateway_settings
from mock_upstream import MockServer, MockUpstream, Recorder

REFRESH = 0.2
V1 = {
    "messages": [
        {"role": "system", "content": "Answer in {{language}}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "model": "gpt-4o-mini",
    "params": {"temperature": 0.2, "max_tokens": 50},
    "variables": {"language": "English", "text": None},
}


@pytest.fixture
def gw(tmp_path: Path, mock: MockUpstream, db_url: str) -> Iterator[LiveGateway]:
    mock.reset()
    settings = gateway_settings(tmp_path, db_url, mock.url, key_refresh_interval=REFRESH)
    live = LiveGateway(settings).start()
    try:
        yield live
    finally:
        live.stop()


def admin(gw: LiveGateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.org.admin_key}"}
    resp = httpx.request(method, gw.base_url + path, json=body, headers=headers, timeout=10)
    assert resp.status_code < 300, resp.text
    return resp


def make_prompt(gw: LiveGateway, name: str = "summary") -> None:
    admin(gw, "POST", "/api/v1/prompts", {"name": name, "description": ""})
    admin(gw, "POST", f"/api/v1/prompts/{name}/versions", V1)
    v2 = {**V1, "messages": [{"role": "system", "content": "V2 in {{language}}: {{text}}"}]}
    admin(gw, "POST", f"/api/v1/prompts/{name}/versions", {**v2, "model": "gpt-4o"})
    admin(gw, "PUT", f"/api/v1/prompts/{name}/labels/production", {"version": 1})
    time.sleep(REFRESH * 3)  # every cache reload after the move


def chat(gw: LiveGateway, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": "Bearer sk-test"}
    return httpx.post(f"{gw.openai_url}/chat/completions", json=body, headers=headers, timeout=10)


def test_rendered_prepended_client_wins_and_fields_stripped(
    gw: LiveGateway, mock: MockUpstream
) -> None:
    make_prompt(gw)
    oai = openai.OpenAI(base_url=gw.openai_url, api_key="sk-test", max_retries=0)
    mine = [{"role": "user", "content": "and shorter"}]
    oai.chat.completions.create(
        model="",
        messages=mine,  # type: ignore[arg-type]
        temperature=0.9,
        extra_body={"prompt_id": "summary", "inputs": {"text": "a {{x}} b", "language": "Welsh"}},
    )
    seen = mock.requests[-1].json
    assert seen["messages"] == [
        {"role": "system", "content": "Answer in Welsh."},
        {"role": "user", "content": "Summarise: a {{x}} b"},
        *mine,
    ]
    assert seen["model"] == "gpt-4o-mini"  # the version's, the client sent none
    assert seen["temperature"] == 0.9 and seen["max_tokens"] == 50  # client wins, gaps filled
    assert not {"prompt_id", "prompt_version", "prompt_label", "inputs"} & set(seen)

    chat(
        gw,
        {"model": "my-model", "prompt_id": "summary", "prompt_version": 2, "inputs": {"text": "t"}},
    )
    seen = mock.requests[-1].json
    assert seen["model"] == "my-model"
    assert seen["messages"] == [{"role": "system", "content": "V2 in English: t"}]

    rows = gw.wait_records(2)
    by_version = {r["prompt_version"]: r for r in rows}
    assert by_version[1]["prompt_name"] == "summary"
    assert by_version[1]["prompt_label"] == "production"
    assert by_version[1]["prompt_inputs"] == {"text": "a {{x}} b", "language": "Welsh"}
    assert by_version[1]["model"] == "gpt-4o-mini"
    assert by_version[2]["prompt_label"] is None and by_version[2]["prompt_inputs"] == {"text": "t"}
    assert [r["prompt_version"] for r in gw.records(prompt_label="production")] == [1]
    assert [r["prompt_version"] for r in gw.records(min_prompt_version=2)] == [2]
    assert len(gw.records(prompt_name="summary")) == 2


def test_a_label_move_is_seen_after_the_refresh(gw: LiveGateway, mock: MockUpstream) -> None:
    make_prompt(gw)
    body = {"prompt_id": "summary", "prompt_label": "production", "inputs": {"text": "t"}}
    assert chat(gw, body).status_code == 200
    assert mock.requests[-1].json["model"] == "gpt-4o-mini"
    admin(gw, "PUT", "/api/v1/prompts/summary/labels/production", {"version": 2})
    time.sleep(REFRESH * 3)
    assert chat(gw, body).status_code == 200
    assert mock.requests[-1].json["messages"][0]["content"] == "V2 in English: t"
    assert mock.requests[-1].json["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"prompt_id": "nope"}, 404, "'nope'"),
        ({"prompt_id": "summary", "prompt_label": "staging"}, 404, "'staging'"),
        ({"prompt_id": "summary", "prompt_version": 9}, 404, "no version 9"),
        ({"prompt_id": "summary", "inputs": {}}, 400, "missing variable 'text'"),
        ({"prompt_id": "summary", "inputs": ["text"]}, 400, "inputs must be a JSON object"),
        ({"prompt_id": "summary", "inputs": {"text": "x" * 70_000}}, 413, "larger than"),
        (
            {"prompt_id": "summary", "prompt_version": 1, "prompt_label": "production"},
            400,
            "not both",
        ),
        ({"prompt_id": 3}, 400, "prompt_id"),
        ({"prompt_id": "summary", "prompt_label": "L" * 100_000}, 400, "a label's name"),
    ],
)
def test_refusals_in_the_openai_shape_and_nothing_forwarded(
    gw: LiveGateway, mock: MockUpstream, body: dict[str, Any], status: int, words: str
) -> None:
    make_prompt(gw)
    before = len(mock.requests)
    resp = chat(gw, {"model": "m", "messages": [], **body})
    assert resp.status_code == status
    error = resp.json()["error"]
    assert words in error["message"] and error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}
    assert len(mock.requests) == before
    [row] = gw.wait_records(1)
    assert row["status"] == status and row["prompt_name"] is None


def test_other_organizations_prompts_are_not_found(gw: LiveGateway, mock: MockUpstream) -> None:
    make_prompt(gw)
    url = f"{gw.base_url}/v1/{gw.other.write_key}/chat/completions"
    body = {"prompt_id": "summary", "inputs": {"text": "t"}}
    resp = httpx.post(url, json=body, headers={"Authorization": "Bearer sk"}, timeout=10)
    assert resp.status_code == 404


def test_the_marker_inside_a_message_changes_nothing(gw: LiveGateway, mock: MockUpstream) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": 'say "prompt_id"'}]}
    assert chat(gw, body).status_code == 200
    assert mock.requests[-1].json == body


class HugeModels(MockServer):
    """An upstream whose models list is enormous: 64 MiB of valid JSON, chunked."""

    thread_name = "huge-models"
    sent = 0

    @staticmethod
    def make_app(recorder: Recorder) -> web.Application:
        async def models(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"content-type": "application/json"})
            await resp.prepare(request)
            await resp.write(b'{"object": "list", "data": [')
            entry = b'{"id": "m", "object": "model", "owned_by": "x"},' * 1000
            try:
                for _ in range(64 * 1024 * 1024 // len(entry)):
                    await resp.write(entry)
                    HugeModels.sent += len(entry)
                await resp.write(b'{"id": "last", "object": "model", "owned_by": "x"}]}')
            except (ConnectionError, RuntimeError):
                return resp  # the gateway stopped reading
            await resp.write_eof()
            return resp

        app = web.Application()
        app.router.add_get("/v1/models", models)
        return app


def test_a_huge_models_list_is_not_read_whole(tmp_path: Path, db_url: str) -> None:
    """The models answer is read whole to merge the prompts into it: boundedly, so an
    upstream answering an enormous list cannot take the gateway's memory."""
    HugeModels.sent = 0  # a class counter: the other store's run must not count here
    with HugeModels() as huge:
        settings = gateway_settings(
            tmp_path, db_url, huge.base_url + "/v1", key_refresh_interval=REFRESH
        )
        live = LiveGateway(settings).start()
        try:
            make_prompt(live)
            headers = {"Authorization": "Bearer sk-test"}
            resp = httpx.get(f"{live.openai_url}/models", headers=headers, timeout=30)
            assert resp.status_code == 200
            ids = [m["id"] for m in resp.json()["data"]]
            assert ids == ["prompt:summary"]  # the prompts alone, as when the upstream fails
            assert resp.headers["heliograph-upstream-status"] == "200"
            assert HugeModels.sent < 48 * 1024 * 1024  # it stopped reading well before the end
            [row] = live.wait_records(1)
            assert "larger than" in row["error"]
        finally:
            live.stop()
