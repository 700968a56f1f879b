"""Replay across upstreams against `heliograph serve`, configured only by environment variables.

Two upstreams: OpenAI (a byte-faithful mock, declared cloud, with a server-side key) and
Ollama (a mock Ollama, no key). A streamed chat request goes through the real `openai`
package; an admin logs in to the dashboard over HTTP and replays it on Ollama with another
model. The replay is checked where users would look: the stored record (upstream, provider,
model, replay_of, tokens as Ollama counted them, a local price of 0), the request Ollama got
(its OpenAI-compatible path, no OpenAI key), and the original's page listing the replay.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import openai
import orjson
import pytest
from e2e_harness import (
    Heliograph,
    admin_env,
    assert_never_stored,
    cloud_and_ollama_env,
    dashboard_login,
    marker,
    new_id,
    received,
    serving,
)

from mock_ollama import DEFAULT_TEXT as OLLAMA_TEXT
from mock_ollama import MockOllama
from mock_upstream import DEFAULT_TEXT, MockUpstream, text_chars

pytestmark = pytest.mark.slow

OPENAI_SERVER_KEY = "sk-proj-serverside-replay-e2e-0123456789abcdef"
OPENAI_CLIENT_KEY = "sk-proj-client-replay-e2e-0123456789abcdef"
ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "e2e correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def mocks() -> Iterator[tuple[MockUpstream, MockOllama]]:
    with MockUpstream() as cloud, MockOllama() as local:
        yield cloud, local


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, mocks: tuple[MockUpstream, MockOllama]
) -> Iterator[Heliograph]:
    cloud, local = mocks
    env = {
        **cloud_and_ollama_env(cloud, local, OPENAI_SERVER_KEY),
        **admin_env(ADMIN_EMAIL, ADMIN_PASSWORD),
    }
    with serving(tmp_path_factory.mktemp("replay-home"), env) as serve:
        yield serve


def test_replay_a_streamed_cloud_request_on_local_ollama(
    server: Heliograph, mocks: tuple[MockUpstream, MockOllama]
) -> None:
    cloud, local = mocks
    text, rid = marker(), new_id()
    chat = [{"role": "user", "content": f"Summarise {text}"}]
    with openai.OpenAI(
        base_url=server.url("v1"), api_key=OPENAI_CLIENT_KEY, max_retries=0
    ) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=chat,  # type: ignore[arg-type]
            stream=True,
            extra_headers={"Helicone-Request-Id": rid},
        )
        pieces = [c.choices[0].delta.content or "" for c in raw.parse() if c.choices]
    assert "".join(pieces) == DEFAULT_TEXT
    assert raw.headers["heliograph-id"] == rid
    received(cloud, text)
    first = server.record(rid)
    assert first["upstream"] == "openai" and first["stream"] is True

    with dashboard_login(server.base_url, ADMIN_EMAIL, ADMIN_PASSWORD) as web:
        detail = web.get(f"/requests/{rid}")
        assert detail.status_code == 200
        assert re.search(r'<option value="ollama"[^>]*>ollama \(local, ollama\)', detail.text)
        body = re.search(
            r'<textarea id="replay-body" name="body"[^>]*>(.*?)</textarea>', detail.text, re.S
        )
        token = CSRF.search(detail.text)
        assert body and token
        resp = web.post(
            f"/requests/{rid}/replay",
            data={
                "csrf_token": token.group(1),
                "body": html.unescape(body.group(1)),
                "target": "ollama",
                "model": "llama3.2",
                "key_for": "ollama",
            },
        )
        assert resp.status_code == 200, resp.text[:2000]
        new = re.search(r'id="new-record" href="/requests/([^"]+)"', resp.text)
        assert new, resp.text[:2000]
        assert 'id="not-stored"' not in resp.text  # the comparison had the stored record
        assert OLLAMA_TEXT in resp.text and DEFAULT_TEXT in resp.text

        replayed = server.record(new.group(1))
        assert replayed["upstream"] == "ollama" and replayed["provider"] == "ollama"
        assert replayed["properties"]["replay_of"] == rid
        assert replayed["properties"]["replayed_by"] == ADMIN_EMAIL
        assert replayed["model"] == "llama3.2" and replayed["state"] == "ok"
        assert replayed["stream"] is True and replayed["endpoint"] == "/v1/chat/completions"
        assert replayed["prompt_tokens"] == text_chars(chat) // 4 + 7  # Ollama's own count
        assert replayed["completion_tokens"] == 5 and replayed["total_tokens"] > 5
        assert replayed["cost_known"] is True and replayed["cost_usd"] == 0
        assert_never_stored(replayed, OPENAI_SERVER_KEY, OPENAI_CLIENT_KEY, server.write_key)

        seen = received(local, text)
        assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
        assert seen.json is not None and seen.json["model"] == "llama3.2"
        assert seen.json["messages"] == chat and seen.json["stream"] is True
        sent = orjson.dumps(seen.to_dict()).decode()
        for secret in (OPENAI_SERVER_KEY, OPENAI_CLIENT_KEY, server.write_key):
            assert secret not in sent
        assert (
            len([r for r in cloud.requests if text.encode() in r.body]) == 1
        )  # not replayed there

        page = web.get(f"/requests/{rid}").text
        replays = re.search(r'<section class="card" id="replays".*?</section>', page, re.S)
        assert replays and f'href="/requests/{replayed["id"]}"' in replays.group(0)
        assert "Replays (1)" in replays.group(0)
    listed = server.listed(replayed["id"], **{"property.replay_of": rid})
    assert listed is not None and listed["upstream"] == "ollama"
