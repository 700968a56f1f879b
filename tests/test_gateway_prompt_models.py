"""Virtual models in the models lists (OpenAI /models, Ollama /api/tags and /v1/models),
merged with the upstream's own and still answered when the upstream fails; a version's
upstream serving the request without the client's provider key; a label move seen by the
virtual model after the refresh."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest

from conftest import LiveGateway
from prompt_routes_support import (
    CLIENT_KEY,
    LLAMA,
    OTHER_KEY,
    REFRESH,
    Mocks,
    admin,
    new_id,
    prompt_gateway,
    running_mocks,
    wait_record,
)

# Prompts naming no upstream are listed everywhere; "elsewhere" names an OpenAI-protocol one,
# "claude-only" an Anthropic one, "ghost" one that is not configured.
EVERYWHERE = {"summary", "helper", "claude-helper", "llama-helper", "needs-topic"}
OPENAI_ROUTE = EVERYWHERE | {"elsewhere"}
OLLAMA_ROUTE = EVERYWHERE


@pytest.fixture(scope="module")
def mocks() -> Iterator[Mocks]:
    with running_mocks() as m:
        yield m


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mocks: Mocks) -> Iterator[LiveGateway]:
    with prompt_gateway(tmp_path_factory.mktemp("prompt-models"), mocks) as live:
        yield live


@pytest.fixture(autouse=True)
def fresh(mocks: Mocks) -> None:
    mocks.reset()


def prompts_in(names: list[str]) -> set[str]:
    return {n.removeprefix("prompt:") for n in names if n.startswith("prompt:")}


def test_openai_models_merged_with_the_upstreams(gw: LiveGateway, mocks: Mocks) -> None:
    rid = new_id()
    with openai.OpenAI(base_url=gw.openai_url, api_key=CLIENT_KEY, max_retries=0) as client:
        page = client.with_options(default_headers={"Helicone-Request-Id": rid}).models.list()
    ids = [m.id for m in page.data]
    assert ids[:2] == ["gpt-4o-mini", "gpt-4o"]  # the upstream's first, as it sent them
    assert prompts_in(ids) == OPENAI_ROUTE  # not claude-only (Anthropic), not ghost
    entry = next(m for m in page.data if m.id == "prompt:helper")
    assert entry.owned_by == "heliograph" and entry.created > 1_600_000_000
    assert mocks.openai.requests[-1].headers["authorization"] == f"Bearer {CLIENT_KEY}"
    row = wait_record(gw, rid)
    assert row["status"] == 200 and row["error"] is None
    assert "prompt:helper" in str(row["response_body"])


def test_models_answered_with_the_prompts_when_the_upstream_fails(
    gw: LiveGateway, mocks: Mocks
) -> None:
    rid = new_id()
    headers = {
        "Authorization": f"Bearer {CLIENT_KEY}",
        "x-mock-status": "500",
        "Helicone-Request-Id": rid,
    }
    resp = httpx.get(f"{gw.openai_url}/models", headers=headers, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["heliograph-upstream-status"] == "500"
    doc = resp.json()
    assert doc["object"] == "list"
    assert prompts_in([m["id"] for m in doc["data"]]) == OPENAI_ROUTE
    assert len(doc["data"]) == len(OPENAI_ROUTE)
    assert all("pipeline" not in m for m in doc["data"])
    assert len(mocks.openai.requests) == 1
    row = wait_record(gw, rid)
    assert row["status"] == 200 and "HTTP 500" in row["error"]
    assert row["attempts"] == [
        {"upstream": "openai", "status": 500, "ms": pytest.approx(0, abs=1e4)}
    ]


def test_ollama_tags_and_v1_models(gw: LiveGateway, mocks: Mocks) -> None:
    with ollama.Client(host=f"{gw.base_url}/ollama/{gw.org.write_key}") as client:
        listed = client.list()
    names = [m.model or "" for m in listed.models]
    assert LLAMA in names and prompts_in(names) == OLLAMA_ROUTE
    entry = next(m for m in listed.models if m.model == "prompt:llama-helper")
    assert entry.modified_at is not None and entry.modified_at.year >= 2024
    assert entry.details is not None and entry.details.parent_model == LLAMA
    raw = httpx.get(f"{gw.base_url}/ollama/{gw.org.write_key}/api/tags", timeout=10).json()
    assert all(m["name"] == m["model"] for m in raw["models"])  # Open WebUI reads both

    base = f"{gw.base_url}/ollama/{gw.org.write_key}/v1"
    with openai.OpenAI(base_url=base, api_key="ollama", max_retries=0) as compat:
        ids = [m.id for m in compat.models.list().data]
    assert LLAMA in ids and "prompt:helper" in ids


def test_another_organizations_list_is_passed_through(gw: LiveGateway, mocks: Mocks) -> None:
    url = f"{gw.base_url}/v1/{gw.other.write_key}/models"
    resp = httpx.get(url, headers={"Authorization": "Bearer sk"}, timeout=10)
    assert resp.status_code == 200 and "heliograph-upstream-status" not in resp.headers
    assert not prompts_in([m["id"] for m in resp.json()["data"]])


@pytest.mark.parametrize("how", ["body", "virtual", "with-retries"])
def test_the_versions_upstream_serves_without_the_clients_key(
    gw: LiveGateway, mocks: Mocks, how: str
) -> None:
    rid = new_id()
    body = (
        {"prompt_id": "elsewhere", "model": ""} if how == "body" else {"model": "prompt:elsewhere"}
    )
    headers = {
        "Authorization": f"Bearer {CLIENT_KEY}",
        "x-api-key": CLIENT_KEY,
        "Helicone-Request-Id": rid,
    }
    if how == "with-retries":
        headers["Helicone-Retry-Enabled"] = "true"
    body["messages"] = [{"role": "user", "content": "hi"}]
    resp = httpx.post(f"{gw.openai_url}/chat/completions", json=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert mocks.openai.requests == [] and len(mocks.other.requests) == 1
    seen = mocks.other.requests[0]
    assert seen.headers["authorization"] == f"Bearer {OTHER_KEY}"
    assert CLIENT_KEY not in str(seen.headers)
    assert seen.json["messages"][0] == {"role": "system", "content": "Served elsewhere."}
    row = wait_record(gw, rid)
    assert row["served_by"] == "other" and row["upstream"] == "openai"
    assert row["prompt_name"] == "elsewhere"
    assert "authorization" in row["request_headers"]  # recorded, redacted
    assert CLIENT_KEY not in str(row["request_headers"])


@pytest.mark.parametrize("how", ["plain", "with-retries"])
def test_no_credential_of_the_client_follows_to_the_versions_upstream(
    gw: LiveGateway, mocks: Mocks, how: str
) -> None:
    """Not only the provider key headers: a gateway's token, Google's key header, a proxy's
    key, a cookie, and a key in the query were all meant for the upstream addressed."""
    headers = {
        "Authorization": f"Bearer {CLIENT_KEY}",
        "cf-aig-authorization": f"Bearer {CLIENT_KEY}",
        "x-goog-api-key": CLIENT_KEY,
        "x-litellm-api-key": CLIENT_KEY,
        "cookie": f"session={CLIENT_KEY}",
        "x-trace": "kept",
    }
    if how == "with-retries":
        headers["Helicone-Retry-Enabled"] = "true"
    body = {"model": "prompt:elsewhere", "messages": [{"role": "user", "content": "hi"}]}
    url = f"{gw.openai_url}/chat/completions?key={CLIENT_KEY}&api-version=1"
    resp = httpx.post(url, json=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert mocks.openai.requests == [] and len(mocks.other.requests) == 1
    seen = mocks.other.requests[0]
    assert seen.headers["authorization"] == f"Bearer {OTHER_KEY}"
    assert seen.headers["x-trace"] == "kept"
    assert CLIENT_KEY not in str(seen.headers)
    assert CLIENT_KEY not in seen.query and seen.query == "api-version=1"


def test_a_target_url_keeps_the_clients_choice(gw: LiveGateway, mocks: Mocks) -> None:
    headers = {
        "Authorization": f"Bearer {CLIENT_KEY}",
        "Helicone-Target-URL": mocks.openai.url,
    }
    body = {"model": "prompt:elsewhere", "messages": []}
    resp = httpx.post(f"{gw.openai_url}/chat/completions", json=body, headers=headers, timeout=10)
    assert resp.status_code == 200
    assert mocks.other.requests == []
    assert mocks.openai.requests[0].headers["authorization"] == f"Bearer {CLIENT_KEY}"


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("prompt:claude-only", "does not speak the openai protocol"),
        ("prompt:ghost", "'nope' is not configured"),
    ],
)
def test_an_upstream_that_cannot_serve_is_refused(
    gw: LiveGateway, mocks: Mocks, model: str, words: str
) -> None:
    body = {"model": model, "messages": []}
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    resp = httpx.post(f"{gw.openai_url}/chat/completions", json=body, headers=headers, timeout=10)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert words in error["message"] and error["code"] == "invalid_prompt_upstream"
    assert mocks.count() == 0


def test_the_same_upstream_named_by_the_version_keeps_the_clients_key(
    gw: LiveGateway, mocks: Mocks
) -> None:
    base = f"{gw.base_url}/anthropic/{gw.org.write_key}"
    body = {"model": "prompt:claude-only", "max_tokens": 5, "messages": []}
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    resp = httpx.post(f"{base}/v1/messages", json=body, headers=headers, timeout=10)
    assert mocks.claude.requests[-1].headers["x-api-key"] == CLIENT_KEY
    assert mocks.claude.requests[-1].json["system"] == "Claude."
    assert resp.status_code == 200


def test_a_label_move_reaches_the_virtual_model(gw: LiveGateway, mocks: Mocks) -> None:
    def first_message() -> str:
        body = {"model": "prompt:helper", "messages": [{"role": "user", "content": "x"}]}
        headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
        url = f"{gw.openai_url}/chat/completions"
        assert httpx.post(url, json=body, headers=headers, timeout=10).status_code == 200
        content: str = mocks.openai.requests[-1].json["messages"][0]["content"]
        return content

    assert first_message() == "You are a helpful assistant."
    admin(gw, "PUT", "/api/v1/prompts/helper/labels/production", {"version": 2})
    try:
        time.sleep(REFRESH * 3)
        assert first_message() == "V2 a helpful assistant"
    finally:
        admin(gw, "PUT", "/api/v1/prompts/helper/labels/production", {"version": 1})
        time.sleep(REFRESH * 3)
