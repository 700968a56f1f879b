"""The mock Ollama server, checked with the real ``ollama`` and ``openai`` SDKs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from mock_ollama import (
    DEFAULT_TEXT,
    MID_STREAM_ERROR,
    THINKING_TEXT,
    TOOL_ARGUMENTS,
    VERSION,
    MockOllama,
    go_time,
)

PROMPT = "Say hello to the test suite"  # 27 chars -> 27 // 4 + 7 = 13 prompt tokens
PROMPT_TOKENS = 13
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
WORDS = ["Hello", " from", " the", " mock", " Ollama."]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
FINAL_KEYS = [
    *("model", "created_at", "message", "done_reason", "done", "total_duration"),
    *("load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"),
]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockOllama]:
    with MockOllama() as m:
        yield m


@pytest.fixture(autouse=True)
def _reset(mock: MockOllama) -> None:
    mock.reset()


@pytest.fixture
def client(mock: MockOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=mock.base_url) as c:
        yield c


@pytest.fixture
def http(mock: MockOllama) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.base_url, timeout=10) as c:
        yield c


@pytest.fixture
def oai(mock: MockOllama) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.url, api_key="ollama", max_retries=0) as c:
        yield c


def ndjson(resp: httpx.Response) -> list[dict[str, Any]]:
    """The lines of an NDJSON response; checks Ollama's framing on the way."""
    assert resp.headers["content-type"] == "application/x-ndjson"
    assert resp.text.endswith("}\n") and "\n\n" not in resp.text
    return [json.loads(line) for line in resp.text.split("\n")[:-1]]


# ---------------------------------------------------------------- chat


def test_chat_non_stream(mock: MockOllama, client: ollama.Client, http: httpx.Client) -> None:
    res = client.chat(model="llama3.2", messages=MESSAGES, stream=False)
    assert res.model == "llama3.2" and res.done is True and res.done_reason == "stop"
    assert res.message.role == "assistant" and res.message.content == DEFAULT_TEXT
    assert res.message.thinking is None and res.message.tool_calls is None
    assert (res.prompt_eval_count, res.eval_count) == (PROMPT_TOKENS, 5)
    assert res.load_duration == 20_000_000
    assert res.prompt_eval_duration == PROMPT_TOKENS * 2_000_000
    assert res.eval_duration == 5 * 20_000_000
    assert res.total_duration == 20_000_000 + PROMPT_TOKENS * 2_000_000 + 100_000_000
    (req,) = mock.wait_for(1)
    assert (req.method, req.path) == ("POST", "/api/chat")
    assert req.json is not None and req.json["stream"] is False

    resp = http.post("/api/chat", json={"model": "llama3.2", "messages": MESSAGES, "stream": False})
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    doc = resp.json()
    assert resp.content == json.dumps(doc, separators=(",", ":")).encode()  # compact, no newline
    assert list(doc) == FINAL_KEYS
    assert CREATED_AT.fullmatch(doc["created_at"])


def test_chat_stream_is_the_default(
    mock: MockOllama, client: ollama.Client, http: httpx.Client
) -> None:
    parts = list(client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    assert [p.message.content for p in parts] == [*WORDS, ""]
    assert all(p.done is False and p.eval_count is None for p in parts[:-1])
    assert parts[-1].done is True and parts[-1].eval_count == 5

    lines = ndjson(http.post("/api/chat", json={"model": "llama3.2", "messages": MESSAGES}))
    assert len(lines) == 6
    for line in lines[:-1]:
        assert list(line) == ["model", "created_at", "message", "done"]
        assert line["message"]["role"] == "assistant" and line["done"] is False
        assert CREATED_AT.fullmatch(line["created_at"])
    assert list(lines[-1]) == FINAL_KEYS
    assert lines[-1]["message"] == {"role": "assistant", "content": ""}


def test_chat_thinking(client: ollama.Client, http: httpx.Client) -> None:
    res = client.chat(model="qwen3:8b", messages=MESSAGES, think=True, stream=False)
    assert res.message.thinking == THINKING_TEXT and res.message.content == DEFAULT_TEXT
    assert res.eval_count == 10
    lines = ndjson(
        http.post("/api/chat", json={"model": "qwen3:8b", "messages": MESSAGES, "think": "high"})
    )
    assert lines[0]["model"] == "qwen3:8b"
    assert lines[0]["message"] == {"role": "assistant", "content": "", "thinking": "The"}
    assert lines[5]["message"] == {"role": "assistant", "content": "Hello"}


def test_chat_tool_calls(mock: MockOllama) -> None:
    with ollama.Client(host=mock.base_url, headers={"x-mock-tool-call": "1"}) as c:
        res = c.chat(model="llama3.2", messages=MESSAGES, tools=[WEATHER_TOOL], stream=False)
        assert res.message.content == ""
        assert res.message.tool_calls is not None
        (call,) = res.message.tool_calls
        assert call.function.name == "get_weather"
        assert call.function.arguments == TOOL_ARGUMENTS
        assert res.eval_count == 5
        parts = list(c.chat(model="llama3.2", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True))
    assert len(parts) == 2
    assert parts[0].message.tool_calls is not None
    assert parts[0].message.tool_calls[0].function.arguments == TOOL_ARGUMENTS


def test_tool_call_wire_shape(http: httpx.Client) -> None:
    body = {"model": "llama3.2", "messages": MESSAGES, "tools": [WEATHER_TOOL]}
    lines = ndjson(http.post("/api/chat", json=body, headers={"x-mock-tool-call": "1"}))
    (call,) = lines[0]["message"]["tool_calls"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": TOOL_ARGUMENTS}


def test_num_predict_and_load(http: httpx.Client) -> None:
    body = {"model": "llama3.2", "messages": MESSAGES, "stream": False}
    doc = http.post("/api/chat", json={**body, "options": {"num_predict": 2}}).json()
    assert doc["message"]["content"] == "Hello from" and doc["done_reason"] == "length"
    assert doc["eval_count"] == 2
    doc = http.post("/api/chat", json={"model": "llama3.2"}).json()
    assert (doc["done_reason"], doc["message"]["content"]) == ("load", "")


# ---------------------------------------------------------------- generate, embed


def test_generate(client: ollama.Client, http: httpx.Client) -> None:
    res = client.generate(model="llama3.2", prompt=PROMPT)
    assert res.response == DEFAULT_TEXT and res.done is True
    assert res.prompt_eval_count == PROMPT_TOKENS and res.eval_count == 5
    assert res.context is not None and len(res.context) == PROMPT_TOKENS + 5
    parts = list(client.generate(model="llama3.2", prompt=PROMPT, stream=True))
    assert [p.response for p in parts] == [*WORDS, ""]
    lines = ndjson(http.post("/api/generate", json={"model": "llama3.2", "prompt": PROMPT}))
    assert list(lines[0]) == ["model", "created_at", "response", "done"]
    assert list(lines[-1])[:6] == [
        "model",
        "created_at",
        "response",
        "done",
        "done_reason",
        "context",
    ]
    assert lines[-1]["done_reason"] == "stop"


def test_generate_thinking(client: ollama.Client) -> None:
    parts = list(client.generate(model="qwen3:8b", prompt=PROMPT, think=True, stream=True))
    assert "".join(p.thinking or "" for p in parts) == THINKING_TEXT
    assert "".join(p.response or "" for p in parts) == DEFAULT_TEXT


def test_embed(client: ollama.Client, http: httpx.Client) -> None:
    res = client.embed(model="nomic-embed-text", input=["hello", "world"])
    assert len(res.embeddings) == 2 and all(len(e) == 8 for e in res.embeddings)
    assert all(abs(x) < 0.5 and (x * 32) % 2 == 1 for e in res.embeddings for x in e)
    assert res.prompt_eval_count == len("helloworld") // 4 + 7
    doc = http.post(
        "/api/embed", json={"model": "nomic-embed-text", "input": "hi", "dimensions": 4}
    ).json()
    assert list(doc) == [
        "model",
        "embeddings",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
    ]
    assert len(doc["embeddings"]) == 1 and len(doc["embeddings"][0]) == 4
    legacy = client.embeddings(model="nomic-embed-text", prompt="hello")
    assert len(legacy.embedding) == 8


def test_embedding_model_cannot_chat(http: httpx.Client) -> None:
    resp = http.post("/api/chat", json={"model": "nomic-embed-text", "messages": MESSAGES})
    assert resp.status_code == 400
    assert resp.json() == {"error": '"nomic-embed-text" does not support chat'}


# ---------------------------------------------------------------- model management


def test_list_ps_show_version(client: ollama.Client, http: httpx.Client) -> None:
    listed = client.list()
    names = [m.model for m in listed.models]
    assert names == ["llama3.2:latest", "qwen3:8b", "nomic-embed-text:latest"]
    first = listed.models[0]
    assert first.details is not None and first.details.family == "llama"
    assert first.details.quantization_level == "Q4_K_M" and first.size and first.modified_at
    raw = http.get("/api/tags").json()["models"][0]
    assert list(raw) == ["name", "model", "modified_at", "size", "digest", "details"]
    assert raw["name"] == raw["model"] and re.fullmatch(r"[0-9a-f]{64}", raw["digest"])
    assert list(raw["details"]) == [
        *("parent_model", "format", "family", "families", "parameter_size", "quantization_level")
    ]

    assert client.ps().models == []
    client.chat(model="llama3.2", messages=MESSAGES)
    running = client.ps().models
    assert [m.model for m in running] == ["llama3.2:latest"]
    assert running[0].expires_at is not None and running[0].size_vram

    shown = client.show("llama3.2")
    assert shown.capabilities == ["completion", "tools"]
    assert shown.modelinfo is not None and shown.modelinfo["llama.context_length"] == 131072
    with pytest.raises(ollama.ResponseError) as info:
        client.show("nope")
    assert info.value.status_code == 404

    assert http.get("/api/version").json() == {"version": VERSION}


# ---------------------------------------------------------------- errors and controls


def test_unknown_model_404(client: ollama.Client, http: httpx.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="missing", messages=MESSAGES)
    assert info.value.status_code == 404
    assert info.value.error == 'model "missing" not found, try pulling it first'
    with pytest.raises(ollama.ResponseError) as info:
        list(client.generate(model="missing", prompt="x", stream=True))
    assert info.value.status_code == 404
    resp = http.post("/api/chat", json={"model": "missing", "messages": MESSAGES})
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.content == b'{"error":"model \\"missing\\" not found, try pulling it first"}'


def test_status_control(client: ollama.Client, http: httpx.Client) -> None:
    resp = http.post(
        "/api/chat",
        json={"model": "llama3.2", "messages": MESSAGES},
        headers={"x-mock-status": "503"},
    )
    assert resp.status_code == 503
    assert resp.json() == {
        "error": "server busy, please try again.  maximum pending requests exceeded"
    }
    assert http.post("/api/chat", content=b"{bad").status_code == 400
    assert http.post("/api/chat", json={"messages": MESSAGES}).json() == {
        "error": "model is required"
    }


def test_mid_stream_error_line(mock: MockOllama, http: httpx.Client) -> None:
    headers = {"x-mock-error-event-after": "2"}
    with ollama.Client(host=mock.base_url, headers=headers) as c:
        seen: list[str] = []
        with pytest.raises(ollama.ResponseError) as info:
            for part in c.chat(model="llama3.2", messages=MESSAGES, stream=True):
                seen.append(part.message.content or "")
    assert seen == WORDS[:2] and info.value.error == MID_STREAM_ERROR
    resp = http.post("/api/chat", json={"model": "llama3.2", "messages": MESSAGES}, headers=headers)
    assert resp.status_code == 200
    assert resp.text.endswith('\n{"error":"' + MID_STREAM_ERROR + '"}\n')


def test_broken_stream(mock: MockOllama) -> None:
    with ollama.Client(host=mock.base_url, headers={"x-mock-break-after": "3"}) as c:
        seen: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError):
            for part in c.chat(model="llama3.2", messages=MESSAGES, stream=True):
                seen.append(part.message.content or "")
    assert seen == WORDS[:3]


def test_cold_start_and_chunk_delay(mock: MockOllama) -> None:
    headers = {"x-mock-cold-ms": "300", "x-mock-chunk-delay-ms": "50"}
    with ollama.Client(host=mock.base_url, headers=headers) as c:
        start = time.monotonic()
        times: list[float] = []
        final = None
        for part in c.chat(model="llama3.2", messages=MESSAGES, stream=True):
            times.append(time.monotonic() - start)
            final = part
    assert times[0] >= 0.29  # the first line (and the headers) waited for the load
    assert times[4] - times[0] >= 4 * 0.045
    assert final is not None and final.load_duration == 300_000_000
    assert final.total_duration == 300_000_000 + PROMPT_TOKENS * 2_000_000 + 100_000_000


def test_echo_auth_is_go_escaped(http: httpx.Client) -> None:
    headers = {"x-mock-echo-auth": "1", "authorization": "Bearer <a&b>"}
    resp = http.post(
        "/api/chat",
        json={"model": "llama3.2", "messages": MESSAGES, "stream": False},
        headers=headers,
    )
    assert b"\\u003ca\\u0026b\\u003e" in resp.content
    assert resp.json()["message"]["content"] == "Authorization: Bearer <a&b>"


def test_go_time() -> None:
    assert go_time(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert go_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert go_time(1_700_000_000_000_000_007) == "2023-11-14T22:13:20.000000007Z"


# ---------------------------------------------------------------- OpenAI compatibility layer


def test_openai_chat_non_stream(oai: openai.OpenAI, http: httpx.Client) -> None:
    res = oai.chat.completions.create(model="llama3.2", messages=MESSAGES)
    assert re.fullmatch(r"chatcmpl-\d{1,3}", res.id)
    assert res.object == "chat.completion" and res.system_fingerprint == "fp_ollama"
    assert res.choices[0].message.content == DEFAULT_TEXT
    assert res.choices[0].finish_reason == "stop"
    assert res.usage is not None
    assert (res.usage.prompt_tokens, res.usage.completion_tokens) == (PROMPT_TOKENS, 5)
    resp = http.post("/v1/chat/completions", json={"model": "llama3.2", "messages": MESSAGES})
    assert resp.headers["content-type"] == "application/json"
    assert resp.content.endswith(b"}\n")
    assert list(resp.json()) == [
        *("id", "object", "created", "model", "system_fingerprint", "choices", "usage")
    ]


def test_openai_chat_stream_with_usage(oai: openai.OpenAI, http: httpx.Client) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="llama3.2", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(
        c.object == "chat.completion.chunk" and c.system_fingerprint == "fp_ollama" for c in chunks
    )
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].delta.content for c in chunks[:-1]] == [*WORDS, ""]
    assert all(c.choices[0].delta.role == "assistant" for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == PROMPT_TOKENS + 5

    body = {"model": "llama3.2", "messages": MESSAGES, "stream": True}
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.headers["content-type"] == "text/event-stream"
    frames = resp.text.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    first = json.loads(frames[0][6:])
    assert "usage" not in first and first["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": "Hello"},
        "finish_reason": None,
    }


def test_openai_reasoning_and_tools(oai: openai.OpenAI, mock: MockOllama) -> None:
    res = oai.chat.completions.create(model="qwen3:8b", messages=MESSAGES, reasoning_effort="low")
    assert getattr(res.choices[0].message, "reasoning", None) == THINKING_TEXT
    with openai.OpenAI(
        base_url=mock.url, api_key="x", max_retries=0, default_headers={"x-mock-tool-call": "1"}
    ) as c:
        chunks = list(
            c.chat.completions.create(
                model="llama3.2", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
            )
        )
        done = c.chat.completions.create(model="llama3.2", messages=MESSAGES, tools=[WEATHER_TOOL])
    calls = chunks[0].choices[0].delta.tool_calls
    assert calls is not None and calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments or "") == TOOL_ARGUMENTS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert done.choices[0].finish_reason == "tool_calls"
    message_calls = done.choices[0].message.tool_calls
    assert message_calls is not None and message_calls[0].type == "function"


def test_openai_models_embeddings_errors(oai: openai.OpenAI) -> None:
    models = oai.models.list()
    assert models.data[0].id == "llama3.2:latest"
    assert all(m.owned_by == "library" and m.object == "model" for m in models.data)
    assert oai.models.retrieve("qwen3:8b").id == "qwen3:8b"
    emb = oai.embeddings.create(model="nomic-embed-text", input=["a", "b"])
    assert len(emb.data) == 2 and emb.usage.prompt_tokens == emb.usage.total_tokens
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="missing", messages=MESSAGES)
    assert info.value.body == {
        "message": 'model "missing" not found, try pulling it first',
        "type": "not_found_error",
        "param": None,
        "code": None,
    }


def test_openai_mid_stream_error_is_swallowed(http: httpx.Client) -> None:
    body = {"model": "llama3.2", "messages": MESSAGES, "stream": True}
    resp = http.post("/v1/chat/completions", json=body, headers={"x-mock-error-event-after": "1"})
    frames = resp.text.split("\n\n")[:-1]
    assert len(frames) == 2 and "[DONE]" not in resp.text
    empty = json.loads(frames[1][6:])
    assert empty["model"] == "" and empty["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
    }


# ---------------------------------------------------------------- harness


def test_reset_wait_for_and_stop() -> None:
    m = MockOllama().start()
    try:
        with httpx.Client(base_url=m.base_url) as h:
            h.get("/api/tags", params={"x": "1"})
        (req,) = m.wait_for(1)
        assert (req.method, req.path, req.query, req.body, req.json) == (
            "GET",
            "/api/tags",
            "x=1",
            b"",
            None,
        )
        with pytest.raises(TimeoutError):
            m.wait_for(2, timeout=0.1)
        m.reset()
        assert m.requests == []
    finally:
        m.stop()
    with httpx.Client() as c, pytest.raises(httpx.ConnectError):
        c.get(m.base_url + "/api/tags")


def test_subprocess_mode() -> None:
    script = Path(__file__).with_name("mock_ollama.py")
    with subprocess.Popen(
        [sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("READY ")
            base = f"http://127.0.0.1:{int(line.split()[1])}"
            with ollama.Client(host=base) as c:
                assert c.chat(model="llama3.2", messages=MESSAGES).message.content == DEFAULT_TEXT
            with httpx.Client(base_url=base) as h:
                items = h.get("/__mock/requests").json()
                assert [i["path"] for i in items] == ["/api/chat"]
                assert h.delete("/__mock/requests").status_code == 200
                assert h.get("/__mock/requests").json() == []
        finally:
            proc.terminate()
            assert proc.wait(10) == 0
