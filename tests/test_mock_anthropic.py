"""The mock Anthropic server, checked with the real ``anthropic`` SDK talking directly to it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from anthropic import Anthropic, AsyncAnthropic

from mock_anthropic import (
    DEFAULT_TEXT,
    THINKING_TEXT,
    TOOL_INPUT,
    TOOL_INTRO,
    MockAnthropic,
    signature_for,
)

MODEL = "claude-sonnet-4-6"
PROMPT = "Say hello to the test suite"  # 27 chars -> 27 // 4 + 7 = 13 input tokens
INPUT_TOKENS = 13
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
WORDS = ["Hello", " from", " the", " mock", " Claude."]
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
RAW_HEADERS = {"x-api-key": "sk-ant-raw", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockAnthropic]:
    with MockAnthropic() as m:
        yield m


@pytest.fixture(autouse=True)
def _reset(mock: MockAnthropic) -> None:
    mock.reset()


@pytest.fixture
def client(mock: MockAnthropic) -> Iterator[Anthropic]:
    with Anthropic(base_url=mock.base_url, api_key="sk-ant-test", max_retries=0) as c:
        yield c


@pytest.fixture
def http(mock: MockAnthropic) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.base_url, headers=RAW_HEADERS, timeout=10) as c:
        yield c


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, decoded data) of each frame; every frame has exactly those two lines."""
    assert text.endswith("\n\n")
    out = []
    for frame in text.split("\n\n")[:-1]:
        name, data = frame.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        out.append((name[7:], json.loads(data[6:])))
    return out


def create_body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": MESSAGES, **extra}


# ---------------------------------------------------------------- non-streaming


def test_non_stream_message(mock: MockAnthropic, client: Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=1024, messages=MESSAGES)
    assert re.fullmatch(r"req_011C\w{20}", raw.headers["request-id"])
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "50"
    msg = raw.parse()
    assert re.fullmatch(r"msg_01\w{22}", msg.id)
    assert (msg.type, msg.role, msg.model) == ("message", "assistant", MODEL)
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].type == "text" and msg.content[0].text == DEFAULT_TEXT
    assert (msg.stop_reason, msg.stop_sequence) == ("end_turn", None)
    usage = msg.usage
    assert (usage.input_tokens, usage.output_tokens) == (INPUT_TOKENS, 5)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
    assert usage.service_tier == "standard"

    (req,) = mock.wait_for(1)
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.headers["anthropic-version"]
    # anthropic SDK 2.x sends the API key as a bearer token, not as x-api-key.
    assert req.headers.get("x-api-key") == "sk-ant-test" or (
        req.headers["authorization"] == "Bearer sk-ant-test"
    )
    assert req.json == create_body()


def test_non_stream_wire_shape(http: httpx.Client) -> None:
    resp = http.post("/v1/messages", json=create_body())
    assert resp.status_code == 200
    assert b"\n" not in resp.content and b": " not in resp.content  # compact JSON
    doc = resp.json()
    keys = ["model", "id", "type", "role", "content", "stop_reason", "stop_sequence", "usage"]
    assert list(doc) == keys
    assert doc["content"] == [{"type": "text", "text": DEFAULT_TEXT}]
    assert doc["usage"] == {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 5,
        "service_tier": "standard",
    }
    assert resp.headers["anthropic-organization-id"]


def test_max_tokens_truncates(client: Anthropic) -> None:
    msg = client.messages.create(model=MODEL, max_tokens=2, messages=MESSAGES)
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello from"
    assert (msg.stop_reason, msg.usage.output_tokens) == ("max_tokens", 2)


def test_cache_tokens_and_system(client: Anthropic) -> None:
    system = [{"type": "text", "text": "x" * 40, "cache_control": {"type": "ephemeral"}}]
    msg = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system=system,  # type: ignore[arg-type]
        messages=MESSAGES,
        extra_headers={"x-mock-cache-read": "100", "x-mock-cache-write": "20"},
    )
    usage = msg.usage
    assert usage.input_tokens == (40 + len(PROMPT)) // 4 + 7
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (100, 20)
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 20


def test_non_stream_tool_use_with_thinking(client: Anthropic) -> None:
    msg = client.messages.create(
        model=MODEL,
        max_tokens=2048,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        thinking=THINKING,
        extra_headers={"x-mock-tool-call": "1"},
    )
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    thinking, text, tool = msg.content
    assert thinking.type == "thinking" and thinking.thinking == THINKING_TEXT
    assert thinking.signature == signature_for(THINKING_TEXT)
    assert text.type == "text" and text.text == TOOL_INTRO
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.input == TOOL_INPUT and re.fullmatch(r"toolu_01\w{22}", tool.id)
    assert msg.stop_reason == "tool_use"
    assert msg.usage.output_tokens == 5 + 4 + 3


def test_count_tokens(client: Anthropic) -> None:
    res = client.messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert res.input_tokens == INPUT_TOKENS


# ---------------------------------------------------------------- streaming


def test_stream_events_in_order(client: Anthropic) -> None:
    events = list(
        client.messages.create(model=MODEL, max_tokens=1024, messages=MESSAGES, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]
    assert start.type == "message_start"
    assert start.message.content == [] and start.message.stop_reason is None
    assert start.message.usage.output_tokens == 1
    texts = [
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert texts == WORDS
    delta = events[-2]
    assert delta.type == "message_delta"
    assert (delta.delta.stop_reason, delta.usage.output_tokens) == ("end_turn", 5)
    assert delta.usage.input_tokens == INPUT_TOKENS


def test_stream_raw_bytes(http: httpx.Client) -> None:
    resp = http.post("/v1/messages", json=create_body(stream=True))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["cache-control"] == "no-cache"
    assert 'event: ping\ndata: {"type": "ping"}\n\n' in resp.text
    events = sse_events(resp.text)
    assert [name for name, _ in events] == [d["type"] for _, d in events]
    assert [name for name, _ in events][:3] == ["message_start", "content_block_start", "ping"]
    message = events[0][1]["message"]
    assert list(message) == [
        *("model", "id", "type", "role", "content", "stop_reason", "stop_sequence", "usage")
    ]
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": INPUT_TOKENS,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 5,
        },
    }
    assert events[-1] == ("message_stop", {"type": "message_stop"})


def test_stream_helper_final_message_tool_use_thinking_cache(client: Anthropic) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        thinking=THINKING,
        extra_headers={
            "x-mock-tool-call": "1",
            "x-mock-cache-read": "7",
            "x-mock-cache-write": "2",
        },
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TOOL_INTRO
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    thinking, _, tool = final.content
    assert thinking.type == "thinking" and thinking.thinking == THINKING_TEXT
    assert thinking.signature == signature_for(THINKING_TEXT)
    assert tool.type == "tool_use" and tool.input == TOOL_INPUT
    assert final.stop_reason == "tool_use"
    usage = final.usage
    assert (usage.input_tokens, usage.output_tokens) == (INPUT_TOKENS, 12)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (7, 2)


def test_stream_helper_plain_text(client: Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as stream:
        assert stream.get_final_text() == DEFAULT_TEXT
        final = stream.get_final_message()
    assert final.usage.output_tokens == 5 and final.stop_reason == "end_turn"


async def test_async_client_stream(mock: MockAnthropic) -> None:
    async with (
        AsyncAnthropic(base_url=mock.base_url, api_key="sk-ant-a", max_retries=0) as c,
        c.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream,
    ):
        final = await stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == DEFAULT_TEXT


def test_thinking_adaptive_stream_deltas(http: httpx.Client) -> None:
    body = create_body(stream=True, thinking={"type": "adaptive"})
    events = sse_events(http.post("/v1/messages", json=body).text)
    deltas = [d["delta"] for name, d in events if name == "content_block_delta"]
    assert [d["type"] for d in deltas] == [
        *["thinking_delta"] * 5,
        "signature_delta",
        *["text_delta"] * 5,
    ]
    starts = [d["content_block"] for name, d in events if name == "content_block_start"]
    assert starts == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": ""},
    ]
    assert events[-2][1]["usage"]["output_tokens"] == 10


def test_tool_input_starts_with_empty_fragment(http: httpx.Client) -> None:
    body = create_body(stream=True, tools=[WEATHER_TOOL])
    events = sse_events(
        http.post("/v1/messages", json=body, headers={"x-mock-tool-call": "1"}).text
    )
    parts = [
        d["delta"]["partial_json"]
        for name, d in events
        if name == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert parts[0] == "" and json.loads("".join(parts)) == TOOL_INPUT
    tool_start = [d for name, d in events if name == "content_block_start"][1]
    assert tool_start["index"] == 1
    assert tool_start["content_block"]["input"] == {}


# ---------------------------------------------------------------- errors and failures


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_status_errors(
    client: Anthropic, status: int, error_class: type[Exception], error_type: str
) -> None:
    with pytest.raises(error_class) as info:
        client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=MESSAGES,
            extra_headers={"x-mock-status": str(status)},
        )
    err = info.value
    assert isinstance(err, anthropic.APIStatusError)
    assert err.status_code == status
    assert isinstance(err.body, dict)
    assert err.body["type"] == "error" and err.body["error"]["type"] == error_type
    assert err.request_id is not None and err.request_id.startswith("req_")


def test_retry_after_header(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/messages",
        json=create_body(),
        headers={"x-mock-status": "429", "x-mock-retry-after": "3"},
    )
    assert resp.status_code == 429 and resp.headers["retry-after"] == "3"
    assert resp.json()["error"]["type"] == "rate_limit_error"


def test_missing_key_and_version(mock: MockAnthropic) -> None:
    with httpx.Client(base_url=mock.base_url) as h:
        resp = h.post(
            "/v1/messages", json=create_body(), headers={"anthropic-version": "2023-06-01"}
        )
        assert resp.status_code == 401
        assert resp.json()["error"] == {
            "type": "authentication_error",
            "message": "x-api-key header is required",
        }
        resp = h.post("/v1/messages", json=create_body(), headers={"x-api-key": "k"})
        assert resp.status_code == 400
        assert resp.json()["error"]["message"] == "anthropic-version: header is required"
    assert len(mock.requests) == 2  # both recorded


def test_missing_fields(http: httpx.Client) -> None:
    resp = http.post("/v1/messages", json={"model": MODEL, "messages": MESSAGES})
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert http.post("/v1/messages", content=b"{nope").status_code == 400


def test_error_event_mid_stream(client: Anthropic, http: httpx.Client) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in client.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-mock-error-event-after": "2"},
        ):
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                seen.append(event.delta.text)
    assert seen == WORDS[:2]
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}

    text = http.post(
        "/v1/messages", json=create_body(stream=True), headers={"x-mock-error-event-after": "2"}
    ).text
    events = sse_events(text)
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    assert "message_delta" not in [name for name, _ in events]


def test_error_event_after_last_delta(http: httpx.Client) -> None:
    text = http.post(
        "/v1/messages", json=create_body(stream=True), headers={"x-mock-error-event-after": "5"}
    ).text
    names = [name for name, _ in sse_events(text)]
    assert names[-3:] == ["content_block_delta", "content_block_stop", "error"]


def test_broken_stream(client: Anthropic, mock: MockAnthropic) -> None:
    seen: list[str] = []
    # The SDK lets the transport's error through as is (httpx2 is its HTTP library).
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        for event in client.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-mock-break-after": "3"},
        ):
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                seen.append(event.delta.text)
    assert seen == WORDS[:3]
    with httpx.Client(base_url=mock.base_url, headers=RAW_HEADERS) as h:
        raw = b""
        with (
            pytest.raises(httpx.RemoteProtocolError),
            h.stream(
                "POST",
                "/v1/messages",
                json=create_body(stream=True),
                headers={"x-mock-break-after": "1"},
            ) as resp,
        ):
            for part in resp.iter_raw():
                raw += part
    assert raw.endswith(b'"text":"Hello"}}\n\n')


def test_timing_controls(client: Anthropic) -> None:
    times: list[float] = []
    start = time.monotonic()
    for event in client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-mock-first-token-delay-ms": "300", "x-mock-chunk-delay-ms": "60"},
    ):
        if event.type in ("message_start", "content_block_delta"):
            times.append(time.monotonic() - start)
    assert times[0] < 0.25  # message_start comes before the first-token wait
    assert times[1] - times[0] >= 0.28
    assert times[-1] - times[1] >= 4 * 0.055


def test_echo_auth(client: Anthropic) -> None:
    msg = client.messages.create(
        model=MODEL, max_tokens=64, messages=MESSAGES, extra_headers={"x-mock-echo-auth": "1"}
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "authorization: Bearer sk-ant-test"


def test_chunks_control(http: httpx.Client) -> None:
    resp = http.post("/v1/messages", json=create_body(), headers={"x-mock-chunks": "3"})
    assert resp.json()["content"][0]["text"] == "tok0 tok1 tok2"
    assert resp.json()["usage"]["output_tokens"] == 3


# ---------------------------------------------------------------- models and harness


def test_models(client: Anthropic) -> None:
    page = client.models.list()
    ids = [m.id for m in page.data]
    assert MODEL in ids
    assert all(m.type == "model" and m.display_name for m in page.data)
    one = client.models.retrieve(MODEL)
    assert one.id == MODEL and one.created_at.year >= 2025
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")


def test_reset_wait_for_and_stop() -> None:
    m = MockAnthropic().start()
    try:
        with httpx.Client(base_url=m.base_url, headers=RAW_HEADERS) as h:
            h.get("/v1/models", params={"limit": "5"})
        (req,) = m.wait_for(1)
        assert (req.method, req.path, req.query, req.body) == ("GET", "/v1/models", "limit=5", b"")
        assert req.headers["x-api-key"] == "sk-ant-raw"
        with pytest.raises(TimeoutError):
            m.wait_for(2, timeout=0.1)
        m.reset()
        assert m.requests == []
    finally:
        m.stop()
    with httpx.Client() as c, pytest.raises(httpx.ConnectError):
        c.get(m.base_url + "/v1/models")


def test_subprocess_mode() -> None:
    script = Path(__file__).with_name("mock_anthropic.py")
    with subprocess.Popen(
        [sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("READY ")
            base = f"http://127.0.0.1:{int(line.split()[1])}"
            with Anthropic(base_url=base, api_key="sk-ant-sub", max_retries=0) as c:
                msg = c.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
            assert msg.content[0].type == "text" and msg.content[0].text == DEFAULT_TEXT
            with httpx.Client(base_url=base) as h:
                items = h.get("/__mock/requests").json()
                assert [i["path"] for i in items] == ["/v1/messages"]
                assert json.loads(items[0]["body"]) == items[0]["json"]
                assert h.delete("/__mock/requests").status_code == 200
                assert h.get("/__mock/requests").json() == []
        finally:
            proc.terminate()
            assert proc.wait(10) == 0
