"""The openai SDK, sync and async, through the gateway to the mock upstream, and the records."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from conftest import LiveGateway
from mock_upstream import DEFAULT_TEXT, TOOL_ARGUMENTS, MockUpstream

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
PROMPT_TOKENS = len("What is the weather in Paris?") // 4 + 7
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            },
        },
    }
]


@pytest.fixture
def oai(gateway: LiveGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.openai_url, api_key="sk-provider-secret", max_retries=0
    ) as c:
        yield c


def test_non_stream_chat_is_forwarded_and_recorded(
    oai: openai.OpenAI, gateway: LiveGateway, mock: MockUpstream
) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, user="alice"
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert completion.usage is not None and completion.usage.prompt_tokens == PROMPT_TOKENS
    rid = raw.headers["heliograph-id"]
    assert raw.headers["helicone-id"] == rid
    # The provider key went upstream untouched; the Heliograph key did not.
    seen = mock.requests[-1]
    assert seen.headers["authorization"] == "Bearer sk-provider-secret"
    assert gateway.org.write_key not in json.dumps(seen.headers)
    assert seen.path == "/v1/chat/completions"

    [row] = gateway.wait_records(1)
    assert row["id"] == rid
    assert row["kind"] == "llm" and row["provider"] == "openai"
    assert row["endpoint"] == "/chat/completions" and row["model"] == "gpt-4o-mini"
    assert row["response_model"] == "gpt-4o-mini"
    assert row["stream"] is False and row["status"] == 200 and row["state"] == "ok"
    assert row["prompt_tokens"] == PROMPT_TOKENS and row["completion_tokens"] == 5
    assert row["total_tokens"] == PROMPT_TOKENS + 5
    assert row["user_id"] == "alice"
    assert row["latency_ms"] > 0 and row["ttft_ms"] is None
    # gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens.
    assert row["cost_known"] is True and row["cost_source"] == "genai-prices"
    assert row["cost_usd"] == (PROMPT_TOKENS * 150 + 5 * 600) / 1e9
    assert row["cost_input_usd"] == PROMPT_TOKENS * 150 / 1e9
    assert row["cost_output_usd"] == 5 * 600 / 1e9
    detail = gateway.record(rid)
    assert detail["request_body"]["messages"] == MESSAGES
    assert detail["response_body"]["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert detail["request_headers"]["authorization"] == "[REDACTED]"
    assert "sk-provider-secret" not in json.dumps(detail)


def test_stream_without_include_usage_hides_the_injected_usage_chunk(
    oai: openai.OpenAI, gateway: LiveGateway, mock: MockUpstream
) -> None:
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert all(c.choices for c in chunks), "the usage chunk we injected leaked to the client"
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == DEFAULT_TEXT
    sent = mock.requests[-1].json
    assert sent["stream_options"] == {"include_usage": True}
    [row] = gateway.wait_records(1)
    assert row["stream"] is True
    assert row["prompt_tokens"] == PROMPT_TOKENS and row["completion_tokens"] == 5
    assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]
    body = gateway.record(row["id"])["response_body"]
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": DEFAULT_TEXT}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 5
    # The record shows what the client sent, not what we changed.
    assert "stream_options" not in gateway.record(row["id"])["request_body"]


def test_stream_with_include_usage_keeps_the_usage_chunk(
    oai: openai.OpenAI, gateway: LiveGateway
) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    [row] = gateway.wait_records(1)
    assert row["total_tokens"] == PROMPT_TOKENS + 5


async def test_async_client_stream_and_non_stream(gateway: LiveGateway) -> None:
    aclient = openai.AsyncOpenAI(base_url=gateway.openai_url, api_key="sk-x", max_retries=0)
    completion = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == DEFAULT_TEXT
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = ""
    async for chunk in stream:
        text += chunk.choices[0].delta.content or ""
    assert text == DEFAULT_TEXT
    await aclient.close()
    rows = gateway.wait_records(2)
    assert {r["stream"] for r in rows} == {True, False}
    assert all(r["model"] == "gpt-4o" and r["completion_tokens"] == 5 for r in rows)


def test_streamed_tool_call_is_merged_by_the_sdk_and_reassembled(
    oai: openai.OpenAI, gateway: LiveGateway
) -> None:
    with oai.chat.completions.stream(
        model="gpt-4o-mini",
        messages=MESSAGES,
        tools=TOOLS,  # type: ignore[arg-type]
        extra_headers={"x-mock-tool-call": "1"},
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == json.loads(TOOL_ARGUMENTS)  # type: ignore[union-attr]
    [row] = gateway.wait_records(1)
    message = gateway.record(row["id"])["response_body"]["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": TOOL_ARGUMENTS,
    }
    assert message["tool_calls"][0]["id"].startswith("call_")
    assert gateway.record(row["id"])["response_body"]["choices"][0]["finish_reason"] == "tool_calls"


def test_embeddings_and_models_list(oai: openai.OpenAI, gateway: LiveGateway) -> None:
    c = oai
    emb = c.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert len(emb.data[0].embedding) == 8
    models = [m.id for m in c.models.list()]
    assert "gpt-4o-mini" in models
    rows = gateway.wait_records(2)
    by_endpoint = {r["endpoint"]: r for r in rows}
    assert by_endpoint["/embeddings"]["kind"] == "llm"
    assert by_endpoint["/embeddings"]["prompt_tokens"] == len("hello world") // 4 + 7
    assert by_endpoint["/models"]["kind"] == "other"
    assert by_endpoint["/models"]["method"] == "GET"
    assert gateway.records(kind="llm") == [by_endpoint["/embeddings"]]


def test_responses_api_stream(oai: openai.OpenAI, gateway: LiveGateway) -> None:
    with oai.responses.stream(model="gpt-4o-mini", input="Say hello") as stream:
        final = stream.get_final_response()
    assert final.output_text == DEFAULT_TEXT
    assert final.usage is not None
    [row] = gateway.wait_records(1)
    assert row["endpoint"] == "/responses" and row["stream"] is True
    assert row["prompt_tokens"] == final.usage.input_tokens
    assert row["completion_tokens"] == final.usage.output_tokens == 5
    assert row["ttft_ms"] is not None
    body = gateway.record(row["id"])["response_body"]
    assert body["status"] == "completed" and body["usage"]["output_tokens"] == 5


def test_upstream_error_status_passes_through_and_is_recorded(
    oai: openai.OpenAI, gateway: LiveGateway
) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-mock-status": "429"}
        )
    assert info.value.status_code == 429
    [row] = gateway.wait_records(1)
    assert row["status"] == 429 and row["state"] == "error"
    assert row["error"] and "rate" in row["error"].lower()


def test_mid_stream_error_event_makes_sdk_raise_and_record_error(
    oai: openai.OpenAI, gateway: LiveGateway
) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-mock-error-event-after": "2"},
    )
    with pytest.raises(openai.APIError):
        list(stream)
    [row] = gateway.wait_records(1)
    assert row["state"] == "error" and row["error"] == "mock mid-stream failure"
    body = gateway.record(row["id"])["response_body"]
    assert body["choices"][0]["message"]["content"] == "Hello from"


def test_broken_upstream_stream_is_reported_and_partial_output_kept(
    oai: openai.OpenAI, gateway: LiveGateway
) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-mock-break-after": "3"},
    )
    received = ""
    with stream, pytest.raises(openai.APIError):
        for chunk in stream:
            received += chunk.choices[0].delta.content or ""
    assert received == "Hello from the"
    [row] = gateway.wait_records(1)
    assert row["state"] == "error" and "mid-response" in row["error"]
    body = gateway.record(row["id"])["response_body"]
    assert body["choices"][0]["message"]["content"] == "Hello from the"
    # No usage arrived: tokens are counted offline (o200k) and flagged as estimated.
    # "What is the weather in Paris?" is 7 tokens, +1 for the role, +3 per message,
    # +3 reply priming = 14; "Hello from the" is 3.
    assert row["tokens_estimated"] is True
    assert row["prompt_tokens"] == 14 and row["completion_tokens"] == 3
