"""OTLP ingest without a server: decoding, and GenAI attributes of each instrumentation as
record fields (the writer's half)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from heliograph.capture.frames import TRACE_KEYS
from heliograph.capture.writer import frame_id
from heliograph.pricing import PriceBook, Usage
from heliograph.store.bodies import BodyPacker, unpack_body
from heliograph.telemetry import otlp_records
from heliograph.telemetry.otlp_decode import BadBatch, SpanData, decode_batch
from heliograph.telemetry.otlp_genai import is_llm
from otlp_support import SpanSpec, batch, chat_attributes, json_batch, trace


def decoded(specs: list[SpanSpec]) -> list[SpanData]:
    out = decode_batch(batch(specs), False, time.time_ns(), 3600 * 10**9)
    assert out.rejected == 0, out.message()
    return out.spans


def rows_of(spans: list[SpanData], book: PriceBook | None = None) -> otlp_records.TraceRows:
    frame = {"id": "b", "ts": time.time(), "org": "org-1", "key": "k-1", "n": len(spans)}
    return otlp_records.build_trace_rows(
        orjson.dumps(frame), orjson.dumps(spans), book or PriceBook(), BodyPacker(), 1 << 20
    )


def one_record(attributes: dict[str, Any], **span: Any) -> tuple[dict[str, Any], Any, Any]:
    rows = rows_of(decoded(trace(SpanSpec("llm", attributes, **span))))
    (record,) = rows.records
    body = record.body
    request = unpack_body(body["request_body"], body["encoding"])
    response = unpack_body(body["response_body"], body["encoding"])
    return (
        record.request,
        orjson.loads(request) if request else None,
        orjson.loads(response) if response else None,
    )


def test_protobuf_and_json_decode_to_the_same_spans() -> None:
    specs = trace(SpanSpec("a", {"n": 3, "f": 1.5, "b": True, "s": "x"}), SpanSpec("b"))
    specs[1].parent = specs[0].span_id
    from_proto = decode_batch(batch(specs), False, time.time_ns(), 10**12).spans
    from_json = decode_batch(orjson.dumps(json_batch(specs)), True, time.time_ns(), 10**12).spans
    for span in from_proto:  # the JSON builder in the tests gives no scope name
        span["a"].pop("otel.scope.name")
    assert from_proto == from_json
    assert from_proto[1]["p"] == specs[0].span_id.hex()
    assert from_proto[0]["a"] == {"n": 3, "f": 1.5, "b": True, "s": "x"}
    assert from_proto[0]["sv"] == "test-app" and from_proto[0]["k"] == "internal"


def test_json_snake_case_names_are_read_too() -> None:
    doc = json_batch(trace(SpanSpec("a")))
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["start_time_unix_nano"] = spans[0].pop("startTimeUnixNano")
    spans[0]["trace_id"] = spans[0].pop("traceId")
    body = orjson.dumps({"resource_spans": doc["resourceSpans"]})
    out = decode_batch(body, True, time.time_ns(), 0)
    assert out.rejected == 0 and len(out.spans) == 1


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"resourceSpans": 3}', b'{"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}'],
)
def test_json_that_is_not_a_batch_is_refused(body: bytes) -> None:
    with pytest.raises(BadBatch):
        decode_batch(body, True, time.time_ns(), 0)


def test_invalid_hex_ids_reject_the_span_not_the_batch() -> None:
    doc = json_batch(trace(SpanSpec("a"), SpanSpec("b")))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "zz" * 8
    out = decode_batch(orjson.dumps(doc), True, time.time_ns(), 3600 * 10**9)
    assert [s["n"] for s in out.spans] == ["b"] and out.rejected == 1
    assert "invalid span id" in out.message()


def test_openai_v2_latest_conventions() -> None:
    attributes = {**chat_attributes(inp=120, out=30), "gen_ai.conversation.id": "conv-9"}
    attributes["gen_ai.usage.cache_read.input_tokens"] = 100
    attributes["user.id"] = "alice"
    attributes["heliograph.property.Env"] = "prod"
    attributes["gen_ai.system_instructions"] = '[{"type":"text","content":"Be brief."}]'
    row, request, response = one_record(attributes)
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (120, 30, 150)
    assert row["cached_tokens"] == 100 and row["session_id"] == "conv-9"
    assert row["user_id"] == "alice" and row["properties"] == {"env": "prod"}
    assert row["source"] == "otlp" and row["endpoint"] == "/chat/completions"
    expected = PriceBook().cost(
        provider="openai",
        model="gpt-4o-mini",
        usage=Usage(prompt_tokens=120, completion_tokens=30, cached_tokens=100),
        upstream="api.openai.com",
        at_ms=row["created_at"],
    )
    assert row["cost_known"] and row["cost_nusd"] == expected.total_nusd
    assert row["cost_cache_read_nusd"] == expected.cache_read_nusd > 0
    assert request == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi there"},
        ],
    }
    assert response["usage"] == {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}


def test_openai_v2_legacy_conventions_without_content() -> None:
    row, request, response = one_record(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 11,
            "gen_ai.usage.output_tokens": 5,
        }
    )
    assert row["provider"] == "openai" and row["upstream"] == "openai"
    assert row["total_tokens"] == 16 and row["cost_known"]
    assert request is None and response is None


def test_openllmetry_indexed_prompts_and_llm_usage() -> None:
    row, request, response = one_record(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.prompt_tokens": 20,
            "gen_ai.usage.completion_tokens": 7,
            "llm.usage.total_tokens": 27,
            "gen_ai.usage.cache_read_input_tokens": 4,
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "Be terse.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "Weather?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Sunny.",
            "gen_ai.completion.0.finish_reason": "stop",
            "traceloop.association.properties.session_id": "s-1",
        }
    )
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (20, 7, 27)
    assert row["cached_tokens"] == 4 and row["session_id"] == "s-1"
    assert row["model"] == "gpt-4o" and row["response_model"] == "gpt-4o-2024-08-06"
    assert [m["content"] for m in request["messages"]] == ["Be terse.", "Weather?"]
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "Sunny."}
    assert response["choices"][0]["finish_reason"] == "stop"


def test_openllmetry_total_only_gives_the_completion() -> None:
    row, _, _ = one_record(
        {
            "llm.request.type": "completion",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "llm.usage.prompt_tokens": 10,
            "llm.usage.total_tokens": 25,
        }
    )
    assert row["completion_tokens"] == 15 and row["provider"] == "anthropic"
    assert row["endpoint"] == "/completions"


def test_openlit_prompt_events_and_errors() -> None:
    row, request, response = one_record(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "mistral_ai",
            "gen_ai.request.model": "mistral-small-latest",
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": 0,
            "gen_ai.usage.total_tokens": 9,
            "gen_ai.server.ttft": 0.25,
            "error.type": "RateLimitError",
        },
        status=2,
        status_message="429 Too Many Requests",
        events=[
            ("gen_ai.content.prompt", {"gen_ai.prompt": "user: hello"}),
            ("exception", {"exception.message": "rate limited", "exception.type": "E"}),
        ],
    )
    assert row["provider"] == "mistral" and row["state"] == "error"
    assert row["error"] == "rate limited" and row["status"] == 500
    assert row["ttft_ms"] == pytest.approx(250.0)
    assert request["messages"] == [{"role": "user", "content": "user: hello"}]
    assert response is None


def test_message_span_events_of_older_conventions() -> None:
    _, request, response = one_record(
        {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "m"},
        events=[
            ("gen_ai.system.message", {"content": "sys"}),
            ("gen_ai.user.message", {"content": "question"}),
            ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message.content": "answer"}),
        ],
    )
    assert request["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "question"},
    ]
    assert response["choices"][0]["message"]["content"] == "answer"


def test_tool_calls_in_semconv_messages() -> None:
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"c": "P"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "sun"}]},
    ]
    attributes = {**chat_attributes(), "gen_ai.input.messages": orjson.dumps(messages).decode()}
    _, request, _ = one_record(attributes)
    call = request["messages"][1]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"c":"P"}'}
    assert request["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "sun"}


@pytest.mark.parametrize(
    ("attributes", "llm"),
    [
        ({"gen_ai.operation.name": "chat"}, True),
        ({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e"}, True),
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}, False),
        ({"gen_ai.operation.name": "invoke_agent", "gen_ai.system": "openai"}, False),
        ({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}, True),
        ({"gen_ai.system": "openai"}, False),
        ({"llm.request.type": "chat"}, True),
        ({"http.request.method": "POST", "server.address": "api.openai.com"}, False),
        ({"mcp.method.name": "tools/call"}, False),
    ],
)
def test_which_spans_are_llm_calls(attributes: dict[str, Any], llm: bool) -> None:
    assert is_llm(attributes) is llm


def test_only_llm_spans_become_records_and_ids_are_stable() -> None:
    specs = trace(
        SpanSpec("agent", {"gen_ai.operation.name": "invoke_agent"}),
        SpanSpec("tool", {"gen_ai.operation.name": "execute_tool", "big": "y" * 10_000}),
        SpanSpec("llm", chat_attributes()),
    )
    spans = decoded(specs)
    first, again = rows_of(spans), rows_of(spans)
    assert len(first.spans) == 3 and len(first.records) == 1
    rid = first.records[0].request["id"]
    assert again.records[0].request["id"] == rid
    assert rid[14] == "8"  # UUIDv8
    assert int(rid[:8] + rid[9:13], 16) == specs[2].start_ns // 1_000_000  # ms first
    assert len(first.spans[1]["attributes"]["big"]) == otlp_records.SPAN_TEXT_CHARS
    assert first.spans[2]["request_id"] == rid and first.spans[0]["request_id"] is None


class Noting(dict[str, Any]):
    """A frame that remembers which of its keys were asked for."""

    def __init__(self, data: dict[str, Any], asked: set[str]) -> None:
        super().__init__(data)
        self.asked = asked

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_every_trace_frame_key_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: set[str] = set()
    spans = decoded(trace(SpanSpec("llm", chat_attributes())))
    frame = {"id": "b", "ts": time.time(), "org": "o", "key": "k", "n": 1}
    assert set(frame) == TRACE_KEYS
    real_loads = orjson.loads

    def noting_loads(raw: bytes) -> Any:
        doc = real_loads(raw)
        return Noting(doc, asked) if isinstance(doc, dict) else doc

    monkeypatch.setattr(otlp_records.orjson, "loads", noting_loads)
    rows = otlp_records.build_trace_rows(
        orjson.dumps(frame), orjson.dumps(spans), PriceBook(), BodyPacker(), 1 << 20
    )
    assert rows.records[0].request["key_id"] == "k"
    assert frame_id(orjson.dumps(frame)) == "b"  # how the writer tells its frames apart
    asked.add("id")
    assert asked >= TRACE_KEYS, f"trace frame keys nobody reads: {TRACE_KEYS - asked}"
