"""The mock upstream, checked with the real ``openai`` SDK talking directly to it."""

from __future__ import annotations

import base64
import itertools
import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from mock_upstream import DEFAULT_TEXT, MockUpstream

PROMPT = "Say hello to the test suite"  # 27 chars -> 27 // 4 + 7 = 13 prompt tokens
PROMPT_TOKENS = 13
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
WORDS = ["Hello", " from", " the", " mock", " upstream."]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
        },
    },
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstream]:
    with MockUpstream() as m:
        yield m


@pytest.fixture(autouse=True)
def _reset(mock: MockUpstream) -> None:
    mock.reset()


@pytest.fixture
def client(mock: MockUpstream) -> Iterator[OpenAI]:
    with OpenAI(base_url=mock.url, api_key="sk-test", max_retries=0) as c:
        yield c


@pytest.fixture
def http(mock: MockUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.url, timeout=10) as c:
        yield c


def raw_events(http: httpx.Client, path: str, body: Any, **headers: str) -> list[Any]:
    """POST and return the decoded `data:` payloads of an SSE response."""
    resp = http.post(path, json=body, headers=headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.text.endswith("\n\n")
    out: list[Any] = []
    for frame in resp.text.split("\n\n")[:-1]:
        data = [line[6:] for line in frame.split("\n") if line.startswith("data: ")]
        assert len(data) == 1, frame
        out.append(data[0] if data[0] == "[DONE]" else json.loads(data[0]))
    return out


# ---------------------------------------------------------------- chat completions


def test_chat_non_stream(mock: MockUpstream, client: OpenAI) -> None:
    res = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert res.object == "chat.completion"
    assert res.id.startswith("chatcmpl-")
    assert res.model == "gpt-4o-mini"
    assert res.system_fingerprint == "fp_mock0000"
    assert res.service_tier == "default"
    choice = res.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert choice.message.role == "assistant"
    assert choice.message.content == DEFAULT_TEXT
    assert choice.message.refusal is None
    assert choice.message.annotations == []
    assert res.usage is not None
    assert res.usage.prompt_tokens == PROMPT_TOKENS
    assert res.usage.completion_tokens == 5
    assert res.usage.total_tokens == PROMPT_TOKENS + 5
    assert res.usage.prompt_tokens_details is not None
    assert res.usage.prompt_tokens_details.cached_tokens == 0
    assert res.usage.completion_tokens_details is not None
    assert res.usage.completion_tokens_details.reasoning_tokens == 0

    (req,) = mock.wait_for(1)
    assert (req.method, req.path, req.query) == ("POST", "/v1/chat/completions", "")
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.json == {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert json.loads(req.body) == req.json


def test_chat_stream_without_usage(client: OpenAI, http: httpx.Client) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert len(chunks) == 1 + 5 + 1
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    assert all(c.system_fingerprint == "fp_mock0000" and c.service_tier for c in chunks)
    first = chunks[0].choices[0].delta
    assert (first.role, first.content, first.refusal) == ("assistant", "", None)
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == WORDS
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None

    events = raw_events(
        http, "/chat/completions", {"model": "m", "messages": MESSAGES, "stream": 1}
    )
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])
    assert all(isinstance(e["obfuscation"], str) for e in events[:-1])
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert events[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_chat_stream_include_usage(client: OpenAI, http: httpx.Client) -> None:
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) == 1 + 5 + 1 + 1
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (PROMPT_TOKENS, 5)
    assert last.usage.total_tokens == PROMPT_TOKENS + 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == DEFAULT_TEXT

    body = {"model": "m", "messages": MESSAGES, "stream": True}
    body["stream_options"] = {"include_usage": True}
    events = raw_events(http, "/chat/completions", body, **{"x-mock-cached-tokens": "4"})
    assert all("usage" in e and e["usage"] is None for e in events[:-2])
    assert events[-2]["usage"] == {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": 5,
        "total_tokens": PROMPT_TOKENS + 5,
        "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


async def test_async_stream_controls(mock: MockUpstream) -> None:
    headers = {"x-mock-chunks": "3", "x-mock-reasoning-tokens": "10"}
    async with AsyncOpenAI(base_url=mock.url, api_key="sk-a", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": [{"type": "text", "text": "x" * 40}]}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2"
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (17, 13, 30)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 10


def test_max_tokens_echo_auth_and_no_usage(client: OpenAI) -> None:
    res = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2)
    assert res.choices[0].message.content == "Hello from"
    assert res.choices[0].finish_reason == "length"

    res = client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers={"x-mock-echo-auth": "1"}
    )
    assert res.choices[0].message.content == "Authorization: Bearer sk-test"

    hdr = {"x-mock-no-usage": "1"}
    res = client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=hdr)
    assert res.usage is None
    stream = client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=hdr,
    )
    chunks = list(stream)
    assert len(chunks) == 7
    assert all(c.usage is None and c.choices for c in chunks)


def test_tool_call_stream_helper(mock: MockUpstream, client: OpenAI) -> None:
    with client.chat.completions.stream(
        model="m", messages=MESSAGES, tools=[WEATHER_TOOL], extra_headers={"x-mock-tool-call": "1"}
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris", "unit": "celsius"}
    assert final.usage is None  # the helper did not ask for usage


def test_tool_call_stream_deltas_and_non_stream(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-tool-model", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.tool_calls is not None
    head = first.tool_calls[0]
    assert (head.index, head.type, head.function and head.function.arguments) == (0, "function", "")
    assert head.id and head.function and head.function.name == "get_weather"
    fragments = []
    for c in chunks[1:-1]:
        (tc,) = c.choices[0].delta.tool_calls or []
        assert tc.index == 0 and tc.id is None and tc.type is None and tc.function is not None
        assert tc.function.name is None
        fragments.append(tc.function.arguments or "")
    assert len(fragments) == 5
    assert json.loads("".join(fragments)) == {"location": "Paris", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    res = client.chat.completions.create(model="gpt-tool", messages=MESSAGES, tools=[WEATHER_TOOL])
    assert res.choices[0].finish_reason == "tool_calls"
    msg = res.choices[0].message
    assert msg.content is None
    (call,) = msg.tool_calls or []
    assert json.loads(call.function.arguments) == {"location": "Paris", "unit": "celsius"}
    assert res.usage is not None and res.usage.completion_tokens == 5


# ---------------------------------------------------------------- other endpoints


def test_legacy_completions(client: OpenAI) -> None:
    res = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=PROMPT)
    assert res.object == "text_completion"
    assert res.choices[0].text == DEFAULT_TEXT
    assert res.choices[0].finish_reason == "stop"
    assert res.usage is not None and res.usage.prompt_tokens == PROMPT_TOKENS
    assert res.usage.completion_tokens == 5

    stream = client.completions.create(
        model="i", prompt=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == DEFAULT_TEXT
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == PROMPT_TOKENS + 5


def test_embeddings_float_and_base64(mock: MockUpstream, client: OpenAI) -> None:
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "bb"], encoding_format="float"
    )
    b64 = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "bb"], encoding_format="base64"
    )
    default = client.embeddings.create(model="text-embedding-3-small", input=["a", "bb"])
    for res in (floats, b64, default):
        assert [d.index for d in res.data] == [0, 1]
        assert res.usage.prompt_tokens == res.usage.total_tokens == 3 // 4 + 7
    vectors = [d.embedding for d in floats.data]
    assert all(len(v) == 8 for v in vectors) and vectors[0] != vectors[1]
    # an explicit encoding_format="base64" is returned as is; the default one is decoded
    decoded = [list(struct.unpack("<8f", base64.b64decode(str(d.embedding)))) for d in b64.data]
    assert decoded == vectors
    assert [d.embedding for d in default.data] == vectors
    sent = [r.json["encoding_format"] for r in mock.wait_for(3)]
    assert sent == ["float", "base64", "base64"]  # the SDK asks for base64 by default

    res = client.embeddings.create(model="e", input="hello", dimensions=4)
    assert len(res.data) == 1 and len(res.data[0].embedding) == 4


def test_responses_stream_helper(mock: MockUpstream, client: OpenAI) -> None:
    deltas = []
    with client.responses.stream(model="gpt-4o-mini", input=PROMPT) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert deltas == WORDS
    assert final.status == "completed"
    assert final.output_text == DEFAULT_TEXT
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (PROMPT_TOKENS, 5)
    assert final.usage.total_tokens == PROMPT_TOKENS + 5
    assert final.usage.input_tokens_details.cached_tokens == 0
    assert final.usage.output_tokens_details.reasoning_tokens == 0
    assert mock.wait_for(1)[0].path == "/v1/responses"


def test_responses_raw_events(client: OpenAI, http: httpx.Client) -> None:
    events = list(
        client.responses.create(model="m", input="hi", instructions="Be nice.", stream=True)
    )
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.usage is not None
    assert done.response.usage.input_tokens == (2 + 8) // 4 + 7

    resp = http.post("/responses", json={"model": "m", "input": "hi", "stream": True})
    frames = resp.text.split("\n\n")[:-1]
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line[len("event: ") :] == json.loads(data_line[len("data: ") :])["type"]

    res = client.responses.create(model="m", input=[{"role": "user", "content": "hello"}])
    assert res.output_text == DEFAULT_TEXT
    assert res.usage is not None and res.usage.input_tokens == 5 // 4 + 7


def test_models_and_moderations(client: OpenAI) -> None:
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert "gpt-4o-mini" in ids
    assert all(m.object == "model" and m.owned_by and m.created for m in models.data)
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    assert client.models.retrieve("my-local-model").id == "my-local-model"

    mod = client.moderations.create(input=["one", "two"])
    assert len(mod.results) == 2
    assert mod.results[0].flagged is False
    assert mod.results[0].categories.self_harm is False


# ---------------------------------------------------------------- errors and failures


@pytest.mark.parametrize(
    ("status", "exc", "code"),
    [
        (400, openai.BadRequestError, None),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (403, openai.PermissionDeniedError, "unsupported_country_region_territory"),
        (404, openai.NotFoundError, "model_not_found"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
def test_error_status(
    client: OpenAI, status: int, exc: type[openai.APIStatusError], code: Any
) -> None:
    headers = {"x-mock-status": str(status), "x-mock-retry-after": "7"}
    with pytest.raises(exc) as info:
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers=headers
        )
    assert info.value.status_code == status
    assert info.value.code == code
    assert info.value.response.headers["retry-after"] == "7"
    assert isinstance(info.value.body, dict) and set(info.value.body) == {
        "message",
        "type",
        "param",
        "code",
    }


def test_bad_input(http: httpx.Client) -> None:
    resp = http.post("/chat/completions", content=b"{not json")
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    resp = http.post("/chat/completions", json={"messages": MESSAGES})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "model"


def test_mid_stream_error_event(client: OpenAI) -> None:
    received = []
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers={"x-mock-error-event-after": "2"}
    )
    with pytest.raises(openai.APIError, match="mock mid-stream failure"):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 1 + 2


def test_broken_stream(client: OpenAI, http: httpx.Client) -> None:
    received = []
    stream = client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers={"x-mock-break-after": "3"}
    )
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert [c.choices[0].delta.content for c in received[1:]] == WORDS[:3]

    with pytest.raises(httpx.RemoteProtocolError):
        http.post(
            "/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True},
            headers={"x-mock-break-after": "0"},
        )


def test_delay_makes_client_time_out(mock: MockUpstream) -> None:
    with OpenAI(base_url=mock.url, api_key="k", max_retries=0, timeout=0.2) as client:
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.models.list(extra_headers={"x-mock-delay-ms": "3000"})
        assert time.monotonic() - start < 1.5


# ---------------------------------------------------------------- timing


def _timed_reads(http: httpx.Client, headers: dict[str, str]) -> list[tuple[float, bytes]]:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    reads = []
    with http.stream("POST", "/chat/completions", json=body, headers=headers) as resp:
        start = time.monotonic()
        for raw in resp.iter_raw():
            reads.append((time.monotonic() - start, raw))
    return reads


def test_chunks_are_flushed_separately(http: httpx.Client) -> None:
    reads = _timed_reads(http, {"x-mock-chunk-delay-ms": "50"})
    content = [(t, raw) for t, raw in reads if b'"content":"' in raw and b'"role"' not in raw]
    assert [raw.count(b"data: ") for _, raw in content] == [1] * 5  # never coalesced
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(content)]
    assert len(gaps) == 4 and all(g >= 0.04 for g in gaps), gaps
    assert b"".join(raw for _, raw in reads).endswith(b"data: [DONE]\n\n")


def test_first_token_delay(http: httpx.Client) -> None:
    reads = _timed_reads(http, {"x-mock-first-token-delay-ms": "300"})
    assert b'"role":"assistant"' in reads[0][1]
    assert reads[0][0] < 0.2
    first_content = next(t for t, raw in reads if b'"content":"Hello"' in raw)
    assert first_content >= 0.28


# ---------------------------------------------------------------- harness API


def test_wait_for_times_out_and_context_manager() -> None:
    with MockUpstream() as m:
        assert m.url == m.base_url + "/v1" and m.base_url.startswith("http://127.0.0.1:")
        with pytest.raises(TimeoutError):
            m.wait_for(1, timeout=0.05)
        with httpx.Client() as c:
            c.get(m.url + "/models?x=1", headers={"X-Custom": "A"})
        (req,) = m.wait_for(1)
        assert (req.method, req.path, req.query, req.body, req.json) == (
            "GET",
            "/v1/models",
            "x=1",
            b"",
            None,
        )
        assert req.headers["x-custom"] == "A"
        m.reset()
        assert m.requests == []
    with httpx.Client() as c, pytest.raises(httpx.ConnectError):
        c.get(m.url + "/models")


def test_subprocess_mode() -> None:
    script = Path(__file__).with_name("mock_upstream.py")
    with subprocess.Popen(
        [sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("READY ")
            base = f"http://127.0.0.1:{int(line.split()[1])}"
            with OpenAI(base_url=base + "/v1", api_key="sk-sub", max_retries=0) as client:
                res = client.chat.completions.create(model="m", messages=MESSAGES)
            assert res.choices[0].message.content == DEFAULT_TEXT
            with httpx.Client(base_url=base) as http:
                items = http.get("/__mock/requests").json()
                assert len(items) == 1
                assert items[0]["path"] == "/v1/chat/completions"
                assert items[0]["headers"]["authorization"] == "Bearer sk-sub"
                assert json.loads(items[0]["body"]) == items[0]["json"]
                assert http.delete("/__mock/requests").status_code == 200
                assert http.get("/__mock/requests").json() == []
        finally:
            proc.terminate()
            assert proc.wait(10) == 0
