"""The prompt Playground: versions run side by side through the gateway, recorded with the
prompt fields and the playground property; refusals send nothing; keys stay bound to their
upstream and are never stored; viewers read but cannot run."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from conftest import LiveGateway, gateway_settings
from mock_ollama import DEFAULT_TEXT as OLLAMA_TEXT
from mock_ollama import MockOllama
from mock_upstream import DEFAULT_TEXT, MockUpstream
from web_support import WebClient, add_user

OPENAI_SERVER_KEY = "sk-server-openai-playground-0123456789"
TYPED_KEY = "sk-typed-for-ollama-only-0123456789"
V1 = {
    "messages": [
        {"role": "system", "content": "Answer in {{language}}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "model": "gpt-4o-mini",
    "upstream": "openai",
    "variables": {"language": "English", "text": None},
    "message": "first",
}
REFRESH = 0.2  # seconds: how soon a label move reaches the gateway's prompt cache
V2 = {**V1, "params": {"max_tokens": 3}, "message": "shorter"}


@pytest.fixture(scope="module")
def ollama() -> Iterator[MockOllama]:
    server = MockOllama().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gw(tmp_path: Path, mock: MockUpstream, ollama: MockOllama) -> Iterator[LiveGateway]:
    mock.reset()
    ollama.reset()
    upstreams = {
        "openai": {"url": mock.url, "api_key": OPENAI_SERVER_KEY, "local": False},
        "ollama": {"url": ollama.base_url, "protocol": "ollama"},
    }
    gw = LiveGateway(
        gateway_settings(
            tmp_path,
            f"sqlite:///{tmp_path / 'gw.db'}",
            mock.url,
            upstreams=upstreams,
            key_refresh_interval=REFRESH,
        )
    ).start()
    add_user(gw, "admin@example.com")
    add_user(gw, "viewer@example.com", role="viewer")
    try:
        yield gw
    finally:
        gw.stop()


def api(gw: LiveGateway, method: str, path: str, body: Any) -> httpx.Response:
    return httpx.request(
        method,
        gw.base_url + path,
        json=body,
        headers={"Authorization": f"Bearer {gw.org.admin_key}"},
        timeout=10,
    )


def make_prompt(gw: LiveGateway, name: str = "summary", *versions: dict[str, Any]) -> None:
    assert api(gw, "POST", "/api/v1/prompts", {"name": name}).status_code == 201
    for body in versions or (V1, V2):
        assert api(gw, "POST", f"/api/v1/prompts/{name}/versions", body).status_code == 201


def run(web: WebClient, name: str = "summary", **fields: str) -> httpx.Response:
    data = {"a_ref": "v1", "a_target": "openai", "a_key_for": "openai"}
    return web.post(f"/prompts/{name}/playground", {**data, **fields})


def result_ids(page: str) -> list[str]:
    return re.findall(r'class="run-link" href="/requests/([^"]+)"', page)


def test_two_versions_run_side_by_side_recorded_as_playground_runs(
    gw: LiveGateway, mock: MockUpstream
) -> None:
    make_prompt(gw)
    with WebClient(gw, "admin@example.com") as web:
        form = web.get("/prompts/summary/playground")
        assert form.status_code == 200
        assert 'name="input.language"' in form.text and ">English</textarea>" in form.text
        assert 'name="input.text"' in form.text and 'id="run"' in form.text
        resp = run(web, **{"input.text": "the sky", "b_ref": "v2", "b_target": "openai"})
    assert resp.status_code == 200, resp.text
    ids = result_ids(resp.text)
    assert len(ids) == 2
    assert DEFAULT_TEXT in resp.text and "Hello from the</pre>" in resp.text  # v2: max_tokens 3
    assert 'class="notice not-stored"' not in resp.text  # the stored figures are shown
    sent = sorted(
        (r.json for r in mock.requests if r.json is not None), key=lambda b: "max_tokens" in b
    )
    assert [b["messages"] for b in sent] == [
        [
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Summarise: the sky"},
        ]
    ] * 2
    assert all("prompt_id" not in b and "inputs" not in b for b in sent)
    rows = {r["id"]: r for r in gw.records(**{"property.playground": "summary"})}
    assert set(rows) == set(ids)
    stored = [gw_record(gw, i) for i in ids]
    by_version = {rec["prompt_version"]: rec for rec in stored}
    assert set(by_version) == {1, 2}
    for rec in stored:
        assert rec["prompt_name"] == "summary" and rec["prompt_label"] is None
        assert rec["prompt_inputs"] == {"text": "the sky"}
        assert rec["properties"]["playground_by"] == "admin@example.com"
        assert rec["upstream"] == "openai" and rec["total_tokens"]
    runs = {r["properties"]["playground_run"] for r in by_version.values()}
    assert len(runs) == 1  # one run groups both columns
    # The figures on the page are the stored ones.
    v2 = by_version[2]
    block = re.search(r'data-slot="b">(.*?)</pre>', resp.text, re.S)
    assert block and f'data-figure="total_tokens">{v2["total_tokens"]}' in block.group(1)


def gw_record(gw: LiveGateway, rid: str) -> dict[str, Any]:
    resp = gw.api(f"/api/v1/requests/{rid}")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def test_a_label_on_another_upstream_and_model_with_a_bound_key(
    gw: LiveGateway, mock: MockUpstream, ollama: MockOllama
) -> None:
    make_prompt(gw)
    assert api(gw, "PUT", "/api/v1/prompts/summary/labels/staging", {"version": 1}).status_code
    time.sleep(REFRESH * 3)  # the label move reaches the gateway's prompt cache
    with WebClient(gw, "admin@example.com") as web:
        page = web.get("/prompts/summary/playground").text
        assert 'value="label:staging"' in page and "label staging → version 1" in page
        resp = run(
            web,
            **{
                "input.text": "tea",
                "b_ref": "label:staging",
                "b_model": "llama3.2",
                "b_target": "ollama",
                "b_key_for": "ollama",
                "b_key": TYPED_KEY,
            },
        )
    assert resp.status_code == 200, resp.text
    assert TYPED_KEY not in resp.text
    assert OLLAMA_TEXT in resp.text and DEFAULT_TEXT in resp.text
    local = [r for r in ollama.requests if r.path == "/v1/chat/completions"]
    assert len(local) == 1 and local[0].json and local[0].json["model"] == "llama3.2"
    assert local[0].headers["authorization"] == f"Bearer {TYPED_KEY}"
    cloud = [r for r in mock.requests if r.path.endswith("/chat/completions")]
    assert len(cloud) == 1 and cloud[0].headers["authorization"] == f"Bearer {OPENAI_SERVER_KEY}"
    for rid in result_ids(resp.text):
        rec = gw_record(gw, rid)
        assert TYPED_KEY not in json.dumps(rec)  # neither in headers nor anywhere else
        if rec["upstream"] == "ollama":
            assert rec["prompt_label"] == "staging" and rec["prompt_version"] == 1
            assert rec["model"] == "llama3.2" and rec["provider"] == "ollama"


def test_a_key_typed_for_another_upstream_or_a_missing_variable_sends_nothing(
    gw: LiveGateway, mock: MockUpstream, ollama: MockOllama
) -> None:
    make_prompt(gw)
    with WebClient(gw, "admin@example.com") as web:
        moved = run(web, **{"input.text": "x", "a_key": TYPED_KEY, "a_key_for": "ollama"})
        assert moved.status_code == 400
        assert "only ever sent to the upstream it was typed for" in moved.text
        assert TYPED_KEY not in moved.text
        missing = run(web, **{"input.text": "", "b_ref": "v2", "b_target": "openai"})
        assert missing.status_code == 400
        assert "missing variable &#39;text&#39;" in missing.text
        assert 'id="playground-error"' in missing.text and 'name="input.text"' in missing.text
        assert run(web, **{"a_ref": ""}).status_code == 400  # no column chosen
        assert run(web, **{"input.text": "x", "a_ref": "v9"}).status_code == 400
        bad = run(web, **{"input.text": "x", "a_target": "nowhere"})
        assert bad.status_code == 400 and "cannot take a prompt" in bad.text
        assert web.get("/prompts/nope/playground").status_code == 404
        assert web.post("/prompts/nope/playground", {"a_ref": "v1"}).status_code == 404
    assert mock.requests == [] and ollama.requests == []
    assert gw.records() == []  # not even a refused record: nothing went through the gateway


def test_viewers_read_the_playground_but_cannot_run_it(gw: LiveGateway, mock: MockUpstream) -> None:
    make_prompt(gw)
    with WebClient(gw, "viewer@example.com") as web:
        page = web.get("/prompts/summary/playground")
        assert page.status_code == 200
        assert 'id="viewer-note"' in page.text and 'id="run"' not in page.text
        assert "<fieldset disabled>" in page.text
        resp = run(web, **{"input.text": "x"})
        assert resp.status_code == 403
    assert mock.requests == []


def test_hostile_template_and_inputs_are_escaped(gw: LiveGateway, mock: MockUpstream) -> None:
    hostile = "<script>alert(1)</script>"
    attr = '"><img src=x onerror=alert(1)>'
    version = {
        "messages": [{"role": "user", "content": f"{hostile} {{{{x}}}} {attr}"}],
        "model": "gpt-4o-mini",
        "upstream": "openai",
        "variables": {"x": attr},
        "message": hostile,
    }
    make_prompt(gw, "hostile", version)
    with WebClient(gw, "admin@example.com") as web:
        page = web.get("/prompts/hostile/playground").text
        resp = run(web, "hostile", **{"input.x": hostile})
    assert resp.status_code == 200, resp.text
    for text in (page, resp.text):
        assert hostile not in text and "<img src=x" not in text
    assert str(escape(f"{hostile} {hostile} {attr}")) in resp.text  # rendered, shown escaped
