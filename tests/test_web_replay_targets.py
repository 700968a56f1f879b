"""Replay on another upstream (a cloud OpenAI request on a local Ollama model), the refusals
that keep the user's edit, keys that never cross hosts, and the stored-record comparison."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveGateway, gateway_settings
from heliograph.config import UpstreamConfig
from heliograph.web import replay as replay_view
from heliograph.web.replay_form import (
    FORM_ROOM,
    initial_form,
    posted_size,
    replay_body,
    replay_problem,
    targets,
)
from mock_anthropic import MockAnthropic
from mock_ollama import MockOllama
from mock_upstream import MockUpstream, prompt_tokens_for, text_chars
from web_support import WebClient, add_user

OPENAI_SERVER_KEY = "sk-server-openai-0123456789"
OLLAMA_SERVER_KEY = "ollama-server-key-0123456789"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_ATTR = '"><img src=x onerror=alert(1)>'
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}


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
    ollama.reset()
    claude.reset()
    upstreams = {
        "openai": {"url": mock.url, "api_key": OPENAI_SERVER_KEY, "local": False},
        "ollama": {"url": ollama.base_url, "protocol": "ollama", "api_key": OLLAMA_SERVER_KEY},
        "claude": {"url": claude.base_url, "protocol": "anthropic", "local": False},
    }
    gw = LiveGateway(
        gateway_settings(tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", mock.url, upstreams=upstreams)
    ).start()
    add_user(gw, "admin@example.com")
    try:
        yield gw
    finally:
        gw.stop()


def original(gw: LiveGateway, body: dict[str, Any] | None = None) -> str:
    resp = httpx.post(
        f"{gw.openai_url}/chat/completions",
        json=body or CHAT,
        headers={"Helicone-User-Id": "alice"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    rid = resp.headers["heliograph-id"]
    wait_record(gw, rid)
    return rid


def wait_record(gw: LiveGateway, rid: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = gw.api(f"/api/v1/requests/{rid}")
        if resp.status_code == 200 or time.monotonic() > deadline:
            assert resp.status_code == 200, resp.text
            data: dict[str, Any] = resp.json()
            return data
        time.sleep(0.05)


def figures(page: str, row: str) -> list[str]:
    """The Original, Replay and Change cells of one comparison row, as text."""
    match = re.search(rf'<tr data-row="{row}">(.*?)</tr>', page, re.S)
    assert match, f"no {row} row in the comparison"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells]


def replay_form(web: WebClient, rid: str) -> dict[str, str]:
    page = web.get(f"/requests/{rid}").text
    body = re.search(r'<textarea id="replay-body" name="body"[^>]*>(.*?)</textarea>', page, re.S)
    assert body
    return {"body": html.unescape(body.group(1))}


def test_replay_on_local_ollama_is_recorded_priced_and_compared(
    gw: LiveGateway, mock: MockUpstream, ollama: MockOllama
) -> None:
    rid = original(gw)
    sent_upstream = len(mock.requests)
    with WebClient(gw, "admin@example.com") as web:
        detail = web.get(f"/requests/{rid}").text
        # Every configured upstream is offered, with whether it can take this request.
        assert re.search(r'<option value="openai" selected[^>]*>openai \(cloud, openai\)', detail)
        assert re.search(r'<option value="ollama"[^>]*>ollama \(local, ollama\)', detail)
        assert 'id="replay-model" type="text" name="model" value="gpt-4o-mini"' in detail
        form = replay_form(web, rid)
        resp = web.post(
            f"/requests/{rid}/replay",
            {**form, "target": "ollama", "model": "llama3.2", "key_for": "ollama"},
        )
    assert resp.status_code == 200, resp.text
    assert len(mock.requests) == sent_upstream  # nothing went to the original upstream
    seen = ollama.requests[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.json["model"] == "llama3.2" and seen.json["messages"] == CHAT["messages"]
    # Ollama's own server key, never OpenAI's, and no client key from the original.
    assert seen.headers.get("authorization") == f"Bearer {OLLAMA_SERVER_KEY}"
    assert OPENAI_SERVER_KEY not in json.dumps(seen.headers)
    new_id = re.search(r'id="new-record" href="/requests/([^"]+)"', resp.text)
    assert new_id, resp.text
    stored = wait_record(gw, new_id.group(1))
    assert stored["upstream"] == "ollama" and stored["provider"] == "ollama"
    assert stored["properties"]["replay_of"] == rid
    assert stored["model"] == "llama3.2" and stored["user_id"] == "alice"
    prompt = prompt_tokens_for(text_chars(CHAT["messages"]))
    ollama_prompt = text_chars(CHAT["messages"]) // 4 + 7
    assert (stored["prompt_tokens"], stored["completion_tokens"]) == (ollama_prompt, 5)
    first = gw.record(rid)
    assert first["prompt_tokens"] == prompt
    # The comparison shows the stored figures of both records, side by side.
    assert 'id="not-stored"' not in resp.text
    assert figures(resp.text, "upstream")[:2] == ["openai", "ollama"]
    assert figures(resp.text, "where")[:2] == ["cloud", "local"]
    assert figures(resp.text, "model")[:2] == [first["response_model"], "llama3.2"]
    assert figures(resp.text, "total_tokens")[:2] == [
        str(first["total_tokens"]),
        str(stored["total_tokens"]),
    ]
    change = (stored["total_tokens"] - first["total_tokens"]) / first["total_tokens"] * 100
    assert figures(resp.text, "total_tokens")[2] == f"{change:+.0f}%"
    assert figures(resp.text, "cost_usd")[0].startswith("$")
    assert figures(resp.text, "latency_ms")[1].endswith(("ms", "s"))
    assert figures(resp.text, "tps")[1].endswith("tok/s")
    assert "Hello from the mock Ollama." in resp.text
    assert f'id="replay-again" href="/requests/{rid}#replay"' in resp.text
    with WebClient(gw, "admin@example.com") as web:
        page = web.get(f"/requests/{rid}").text
        listed = re.search(r'<section class="card" id="replays".*?</section>', page, re.S)
        assert listed and f'href="/requests/{stored["id"]}"' in listed.group(0)
        assert "ollama" in listed.group(0) and "llama3.2" in listed.group(0)
        assert "Replays (1)" in listed.group(0)
        replayed = web.get(f"/requests/{stored['id']}").text
        assert f'id="replay-of"><code>{rid}</code>' in replayed


def test_replay_waits_for_the_record_and_says_when_it_did_not_arrive(
    gw: LiveGateway, mock: MockUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = original(gw)
    monkeypatch.setattr(replay_view, "RECORD_WAIT_S", 0.0)
    monkeypatch.setattr(replay_view, "get_request", _only_originals(rid))
    with WebClient(gw, "admin@example.com") as web:
        resp = web.post(f"/requests/{rid}/replay", replay_form(web, rid))
    assert resp.status_code == 200, resp.text
    assert 'id="not-stored"' in resp.text and "was not stored within 0 seconds" in resp.text
    new_id = re.search(r'id="new-record" href="/requests/([^"]+)"', resp.text)
    assert new_id and f'<a href="/requests/{new_id.group(1)}">its record</a>' in resp.text
    assert figures(resp.text, "status")[1] == "200"
    assert resp.text.count("Hello from the mock upstream.") >= 2  # both outputs shown
    assert wait_record(gw, new_id.group(1))["properties"]["replay_of"] == rid


def _only_originals(rid: str) -> Any:
    """``get_request`` that never finds a replay (a writer that is slow to store it)."""
    from heliograph.store.requests import get_request

    def lookup(engine: Any, org_id: str, wanted: str) -> Any:
        return get_request(engine, org_id, wanted) if wanted == rid else None

    return lookup


def test_refusals_keep_the_edit_and_send_nothing(
    gw: LiveGateway, mock: MockUpstream, ollama: MockOllama, claude: MockAnthropic
) -> None:
    rid = original(gw)
    upstream_calls = len(mock.requests)
    broken = '{"model": "gpt-4o",\n  "messages": [}\n' + HOSTILE_ATTR
    with WebClient(gw, "admin@example.com") as web:
        resp = web.post(f"/requests/{rid}/replay", {"body": broken, "target": "openai"})
        assert resp.status_code == 400
        kept = re.search(
            r'<textarea id="replay-body" name="body"[^>]*>(.*?)</textarea>', resp.text, re.S
        )
        assert kept and html.unescape(kept.group(1)) == broken  # the edit is not lost
        assert HOSTILE_ATTR not in resp.text  # shown escaped
        assert "Invalid JSON at line 2, column 16: unexpected character" in resp.text
        assert 'aria-invalid="true"' in resp.text
        # A key typed for OpenAI never goes to Ollama (nor is it echoed back).
        resp = web.post(
            f"/requests/{rid}/replay",
            {**replay_form(web, rid), "target": "ollama", "key_for": "openai",
             "provider_key": "sk-typed-for-openai"},
        )  # fmt: skip
        assert resp.status_code == 400
        assert "typed for openai" in resp.text and "not to ollama" in resp.text
        assert "sk-typed-for-openai" not in resp.text
        assert '<option value="ollama" selected' in resp.text  # the choice is kept too
        resp = web.post(f"/requests/{rid}/replay", {**replay_form(web, rid), "target": "nope"})
        assert resp.status_code == 400 and "no configured upstream named" in resp.text
        hostile = {**replay_form(web, rid), "target": HOSTILE_ATTR, "model": HOSTILE}
        resp = web.post(f"/requests/{rid}/replay", hostile)
        assert resp.status_code == 400 and "no configured upstream named" in resp.text
        assert HOSTILE_ATTR not in resp.text and HOSTILE not in resp.text
        assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in resp.text  # the model kept
    assert len(mock.requests) == upstream_calls
    assert not ollama.requests

    # An Anthropic-format request cannot go to an OpenAI-only upstream.
    resp = httpx.post(
        f"{gw.base_url}/claude/{gw.org.write_key}/v1/messages",
        json={
            "model": "claude-sonnet-4-6",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    aid = resp.headers["heliograph-id"]
    wait_record(gw, aid)
    with WebClient(gw, "admin@example.com") as web:
        detail = web.get(f"/requests/{aid}").text
        assert re.search(r'<option value="openai"[^>]*>openai \(cloud, openai\) · cannot', detail)
        resp = web.post(f"/requests/{aid}/replay", {**replay_form(web, aid), "target": "openai"})
        assert resp.status_code == 400
        assert "anthropic-format request and openai speaks the openai API" in resp.text
        assert len(claude.requests) == 1
        # On its own upstream it replays, with Anthropic's version header carried over.
        resp = web.post(f"/requests/{aid}/replay", {**replay_form(web, aid), "target": "claude"})
        assert resp.status_code == 200, resp.text
    assert len(claude.requests) == 2
    assert claude.requests[-1].headers.get("anthropic-version") == "2023-06-01"
    assert len(mock.requests) == upstream_calls


def test_hostile_stored_values_stay_escaped_on_new_places(
    gw: LiveGateway, ollama: MockOllama
) -> None:
    """A model name that is markup reaches the replay's error, the stored record's error
    message, the Requests table's error and model columns and the replays list: escaped."""
    rid = original(gw)
    with WebClient(gw, "admin@example.com") as web:
        resp = web.post(
            f"/requests/{rid}/replay",
            {**replay_form(web, rid), "target": "ollama", "model": HOSTILE, "key_for": "ollama"},
        )
        assert resp.status_code == 200, resp.text
        assert "Upstream error" in resp.text
        assert html.escape(HOSTILE, quote=False) in resp.text or "&lt;script&gt;" in resp.text
        assert HOSTILE not in resp.text
        new_id = re.search(r'id="new-record" href="/requests/([^"]+)"', resp.text)
        assert new_id
        stored = wait_record(gw, new_id.group(1))
        assert HOSTILE in (stored["error"] or "") and stored["model"] == HOSTILE
        table = web.get("/requests", cols="time,model,error,where,tps,stream").text
        assert 'data-col="error"' in table and "&lt;script&gt;alert(1)&lt;/script&gt;" in table
        assert HOSTILE not in table
        detail = web.get(f"/requests/{rid}").text
        assert "&lt;script&gt;" in detail and HOSTILE not in detail
        feed = web.get("/requests/live.json", after="0").json()["rows"]
        assert any(
            r["error"] and HOSTILE in r["error"] for r in feed
        )  # JSON; the script uses textContent


def test_cold_start_is_marked_alike_in_the_table_and_on_the_page(gw: LiveGateway) -> None:
    """One rule (a model load over a second) for the table's badge, the Timing table's badge
    and the timing bar's legend; a warm load is called warm everywhere."""
    ids = {}
    for name, cold_ms in (("cold", "1500"), ("warm", "")):
        resp = httpx.post(
            f"{gw.base_url}/ollama/{gw.org.write_key}/api/chat",
            json={
                "model": "llama3.2",
                "stream": False,
                "messages": [{"role": "user", "content": name}],
            },
            headers={"x-mock-cold-ms": cold_ms} if cold_ms else {},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        ids[name] = resp.headers["heliograph-id"]
        wait_record(gw, ids[name])
    with WebClient(gw, "admin@example.com") as web:
        table = web.get("/requests", cols="time,latency,tps,where").text
        for name, rid in ids.items():
            row = table[table.index(f'<tr data-id="{rid}"') :]
            row = row[: row.index("</tr>")]
            assert ('<span class="badge cold"' in row) == (name == "cold")
            assert '<span class="badge local">local</span>' in row
            assert re.search(r'<td class="num">[\d.]+ tok/s</td>', row)
        cold = web.get(f"/requests/{ids['cold']}").text
        assert '<span class="badge cold">cold start</span>' in cold
        assert "Cold start (model load) 1.50 s" in cold and "Model load (warm)" not in cold
        assert re.search(r"<dt>Output speed</dt><dd>[\d.]+ tok/s</dd>", cold)
        assert re.search(r"<dt>Prompt speed</dt><dd>[\d.]+ tok/s</dd>", cold)
        warm = web.get(f"/requests/{ids['warm']}").text
        assert "cold start" not in warm.lower() and "Model load (warm) 20 ms" in warm
        assert '<span class="badge">warm</span>' in warm


def test_large_bodies_fit_the_form_or_are_refused_up_front() -> None:
    """The dashboard accepts forms up to 64 KB as the browser encodes them: a body whose
    indented JSON would not fit is offered compact, and one that fits in neither is refused
    with its size before anyone edits it (never a form that fails on submit)."""
    row = {"method": "POST", "kind": "llm", "body_truncated": False}
    numbers = {"model": "m", "messages": [{"role": "user", "content": list(range(4000))}]}
    assert replay_problem({**row, "request_body": numbers}) is None
    text = replay_body({**row, "request_body": numbers})
    assert json.loads(text) == numbers and "\n" not in text  # compact: indented would not fit
    assert posted_size(json.dumps(numbers, indent=2)) > FORM_ROOM >= posted_size(text)
    small = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert "\n" in replay_body({**row, "request_body": small})  # indented when it fits
    quotes = {"model": "m", "messages": [{"role": "user", "content": '"' * 30_000}]}
    problem = replay_problem({**row, "request_body": quotes})
    assert problem and "too large to edit and replay" in problem and "64 KB" in problem
    assert posted_size('a b\n"') == len("a+b%0D%0A%22")


def test_replay_carries_the_query_string_to_the_same_provider_only(
    gw: LiveGateway, mock: MockUpstream, ollama: MockOllama
) -> None:
    """Azure's api-version and the like come along on the same provider; a credential in the
    query was stored redacted and is left out, never sent as "[REDACTED]"."""
    resp = httpx.post(
        f"{gw.openai_url}/chat/completions?trace=t-1&api-key=sk-query-secret",
        json=CHAT,
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    rid = resp.headers["heliograph-id"]
    assert mock.requests[-1].query == "trace=t-1&api-key=sk-query-secret"
    assert wait_record(gw, rid)["query"] == "trace=t-1&api-key=[REDACTED]"
    with WebClient(gw, "admin@example.com") as web:
        assert web.post(f"/requests/{rid}/replay", replay_form(web, rid)).status_code == 200
        assert mock.requests[-1].query == "trace=t-1"
        form = {**replay_form(web, rid), "target": "ollama", "model": "llama3.2"}
        assert web.post(f"/requests/{rid}/replay", {**form, "key_for": "ollama"}).status_code == 200
    assert ollama.requests[-1].query == ""


def test_a_streamed_replay_not_yet_stored_still_shows_its_output(
    gw: LiveGateway, ollama: MockOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the writer stores the replay, its output is read from the stream itself."""
    rid = original(gw, {**CHAT, "stream": True})
    monkeypatch.setattr(replay_view, "RECORD_WAIT_S", 0.0)
    monkeypatch.setattr(replay_view, "get_request", _only_originals(rid))
    with WebClient(gw, "admin@example.com") as web:
        form = {**replay_form(web, rid), "target": "ollama", "model": "llama3.2"}
        resp = web.post(f"/requests/{rid}/replay", {**form, "key_for": "ollama"})
    assert resp.status_code == 200, resp.text
    assert 'id="not-stored"' in resp.text
    assert ollama.requests[-1].json["stream"] is True
    replay_output = re.search(r"<h2>Replay output</h2><pre class=\"output\">(.*?)</pre>", resp.text)
    assert replay_output and replay_output.group(1) == "Hello from the mock Ollama."
    assert (
        figures(resp.text, "upstream")[1] == "ollama" and figures(resp.text, "where")[1] == "local"
    )


def test_where_each_record_can_go() -> None:
    """The path a record takes on each upstream, from each upstream's base URL convention."""
    ups = {
        "openai": UpstreamConfig(url="https://api.openai.com/v1", local=False),
        "groq": UpstreamConfig(url="https://api.groq.com/openai/v1"),
        "vllm": UpstreamConfig(url="http://10.0.0.5:8000"),  # bare host: serves /v1 below
        "ollama": UpstreamConfig(url="http://127.0.0.1:11434", protocol="ollama"),
        "claude": UpstreamConfig(url="https://api.anthropic.com", protocol="anthropic"),
        "azure": UpstreamConfig(url="https://r.openai.azure.com", provider="azure"),
    }

    def where(**row: Any) -> dict[str, str | None]:
        base = {"method": "POST", "kind": "llm", "provider": row.get("upstream")}
        return {t.name: t.endpoint for t in targets({**base, **row}, ups)}

    chat = where(upstream="openai", protocol="openai", endpoint="/chat/completions")
    assert chat == {
        "openai": "/chat/completions",
        "groq": "/chat/completions",
        "vllm": "/v1/chat/completions",
        "ollama": "/v1/chat/completions",
        "claude": "/v1/chat/completions",
        "azure": None,
    }
    # The same request recorded through Ollama's or vLLM's /v1 maps back the same way.
    assert where(upstream="ollama", protocol="openai", endpoint="/v1/chat/completions") == chat
    assert where(upstream="vllm", protocol="openai", endpoint="/v1/chat/completions") == chat
    embed = where(upstream="openai", protocol="openai", endpoint="/embeddings")
    assert embed["ollama"] == "/v1/embeddings" and embed["claude"] is None
    responses = where(upstream="openai", protocol="openai", endpoint="/responses")
    assert responses["ollama"] is None and responses["groq"] == "/responses"
    native = where(upstream="ollama", protocol="ollama", endpoint="/api/chat")
    assert native == {n: ("/api/chat" if n == "ollama" else None) for n in ups}
    messages = where(upstream="claude", protocol="anthropic", endpoint="/v1/messages")
    assert messages == {n: ("/v1/messages" if n == "claude" else None) for n in ups}
    assert (
        where(upstream="azure", protocol="openai", endpoint="/deployments/d/chat/completions")[
            "azure"
        ]
        == "/deployments/d/chat/completions"
    )
    listed = targets(
        {"method": "POST", "kind": "llm", "upstream": "ollama", "protocol": "ollama"}, ups
    )
    assert [t.name for t in listed][:1] == ["ollama"] and listed[0].local
    assert [t.endpoint is None for t in listed] == sorted(t.endpoint is None for t in listed)
    gone = {"method": "POST", "kind": "llm", "upstream": "old-vllm", "protocol": "openai"}
    gone |= {"endpoint": "/v1/chat/completions", "request_body": {"model": "m"}}
    assert initial_form(gone, ups).target == "groq"  # the first speaking OpenAI natively
    order = [t.name for t in targets({**gone, "provider": "vllm"}, ups)]
    assert order == ["vllm", "groq", "openai", "claude", "ollama", "azure"]
    assert where(**gone)["vllm"] == "/v1/chat/completions"
