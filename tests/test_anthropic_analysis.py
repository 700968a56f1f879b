"""Anthropic analysis on recorded wire samples: reassembly, normalised tokens, timings, kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from heliograph.providers import analyser
from heliograph.providers.analysis import Analysis
from heliograph.providers.anthropic import analyse_request, analyse_response, is_llm_call
from mock_anthropic import DEFAULT_TEXT, THINKING_TEXT, TOOL_INPUT, TOOL_INTRO, signature_for

SAMPLES = Path(__file__).parent / "samples" / "anthropic"
SSE = "text/event-stream; charset=utf-8"
JSON = "application/json"
MODEL = "claude-sonnet-4-6"
INPUT_TOKENS = len("What is the weather in Paris?") // 4 + 7  # the mock's rule: 14


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def frame_marks(body: bytes, sep: bytes = b"\n\n", step: float = 10.0) -> list[tuple[int, float]]:
    """One upstream read per frame, arriving ``step`` ms apart: (end offset, ms)."""
    marks: list[tuple[int, float]] = []
    pos = 0
    while (found := body.find(sep, pos)) >= 0:
        pos = found + len(sep)
        marks.append((pos, step * (len(marks) + 1)))
    if pos < len(body):
        marks.append((len(body), step * (len(marks) + 1)))
    return marks


def stream(name: str, endpoint: str = "/v1/messages", body: bytes | None = None) -> Analysis:
    raw = sample(name) if body is None else body
    out = Analysis()
    analyse_response(endpoint, raw, SSE, frame_marks(raw), out)
    assert out.stream is True
    return out


def reassembled(out: Analysis) -> Any:
    assert out.response_body is not None
    return orjson.loads(out.response_body)


def start_of(name: str) -> dict[str, Any]:
    """The message object of a sample's message_start event."""
    for line in sample(name).split(b"\n"):
        if line.startswith(b"data: ") and b"message_start" in line:
            doc: dict[str, Any] = orjson.loads(line[6:])["message"]
            return doc
    raise AssertionError("no message_start")


# ---------------------------------------------------------------- kinds and requests


@pytest.mark.parametrize(
    ("method", "endpoint", "kind"),
    [
        ("POST", "/v1/messages", "llm"),
        ("POST", "/v1/messages?beta=true", "llm"),
        ("POST", "/v1/messages/", "llm"),
        ("POST", "/v1/complete", "llm"),
        ("POST", "/v1/messages/count_tokens", "other"),
        ("POST", "/v1/messages/batches", "other"),
        ("GET", "/v1/messages/batches", "other"),
        ("GET", "/v1/messages/batches/msgbatch_01/results", "other"),
        ("GET", "/v1/models", "other"),
        ("GET", "/v1/models/claude-sonnet-4-6", "other"),
        ("GET", "/v1/messages", "other"),
        ("POST", "/v1/files", "other"),
    ],
)
def test_kind(method: str, endpoint: str, kind: str) -> None:
    out = Analysis()
    analyse_request(method, endpoint, b"", "", out)
    assert out.kind == kind
    assert is_llm_call(method, endpoint) is (kind == "llm")


def test_request_fields() -> None:
    body = {
        "model": MODEL,
        "max_tokens": 100,
        "stream": True,
        "metadata": {"user_id": "user-42"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = Analysis()
    analyse_request("POST", "/v1/messages", orjson.dumps(body), JSON, out)
    assert (out.kind, out.model, out.stream, out.user) == ("llm", MODEL, True, "user-42")
    assert out.request_doc == body


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "max_tokens": 1}',
        b'{"model": "m", "stream": "yes", "metadata": {"user_id": ""}}',
        b'{"model": 5, "metadata": "x"}',
        b"[1, 2]",
        b"not json",
        b"",
    ],
)
def test_request_defaults_and_junk(raw: bytes) -> None:
    out = Analysis()
    analyse_request("POST", "/v1/messages", raw, JSON, out)
    assert out.kind == "llm" and out.stream is False and out.user is None
    assert out.model in ("m", None)


def test_analyser_registry_finds_the_module() -> None:
    module = analyser("anthropic")
    assert module.analyse_response is analyse_response


# ---------------------------------------------------------------- non-streaming


def test_non_stream_message_normalised_tokens() -> None:
    raw = sample("messages.json")
    out = Analysis()
    analyse_response("/v1/messages", raw, JSON, [(len(raw), 12.5)], out)
    assert out.response_body == raw  # stored as it came
    assert out.response_model == MODEL and out.stream is False
    # input 14 + cache writes 0 + cache reads 3 (x-mock-cache-read: 3)
    assert (out.prompt_tokens, out.cached_tokens, out.cache_write_tokens) == (17, 3, 0)
    assert (out.completion_tokens, out.total_tokens) == (5, 22)
    assert out.ttft_ms is None and out.generation_ms is None and out.stream_error is None


def test_non_stream_tool_use() -> None:
    out = Analysis()
    analyse_response("/v1/messages", sample("messages_tool_use.json"), JSON, [], out)
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (14, 12, 26)
    assert out.reasoning_tokens is None


@pytest.mark.parametrize("name", ["error_429.json", "error_529.json"])
def test_error_bodies_add_nothing(name: str) -> None:
    raw = sample(name)
    out = Analysis()
    analyse_response("/v1/messages", raw, JSON, [], out)
    assert out.response_body == raw
    assert out.prompt_tokens is None and out.completion_tokens is None
    assert out.response_model is None and out.stream_error is None


@pytest.mark.parametrize("name", ["count_tokens.json", "models.json"])
def test_other_endpoints(name: str) -> None:
    out = Analysis()
    analyse_response("/v1/models", sample(name), JSON, [], out)
    assert out.prompt_tokens is None and out.response_body == sample(name)


# ---------------------------------------------------------------- streams


def test_stream_reassembles_the_non_stream_message() -> None:
    out = stream("messages_stream.sse")
    head = start_of("messages_stream.sse")
    assert reassembled(out) == {
        "id": head["id"],
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": DEFAULT_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": INPUT_TOKENS,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 3,
            "cache_creation": {"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 5,
            "service_tier": "standard",
        },
    }
    non_stream = orjson.loads(sample("messages.json"))
    assert set(reassembled(out)) == set(non_stream)
    assert reassembled(out)["content"] == non_stream["content"]
    assert out.response_model == MODEL


def test_stream_tokens_are_normalised() -> None:
    out = stream("messages_stream.sse")
    # x-mock-cache-write: 5, x-mock-cache-read: 3 on top of 14 uncached input tokens
    assert (out.prompt_tokens, out.cached_tokens, out.cache_write_tokens) == (22, 3, 5)
    assert (out.completion_tokens, out.total_tokens) == (5, 27)


def test_stream_timing() -> None:
    # frames: message_start 10, content_block_start 20, ping 30, deltas 40..80
    out = stream("messages_stream.sse")
    assert (out.ttft_ms, out.generation_ms) == (40.0, 40.0)


def test_stream_timing_with_coarse_reads() -> None:
    raw = sample("messages_stream.sse")
    first_delta = raw.index(b"event: content_block_delta")
    marks = [(first_delta - 1, 5.0), (len(raw) - 30, 70.0), (len(raw), 90.0)]
    out = Analysis()
    analyse_response("/v1/messages", raw, SSE, marks, out)
    # the first delta arrived in the second read, the last one too
    assert (out.ttft_ms, out.generation_ms) == (70.0, 0.0)
    out = Analysis()
    analyse_response("/v1/messages", raw, SSE, [], out)
    assert out.ttft_ms is None and out.generation_ms is None and out.completion_tokens == 5


def test_stream_tool_use() -> None:
    out = stream("messages_stream_tool_use.sse")
    message = reassembled(out)
    tool_id = message["content"][1]["id"]
    assert message["content"] == [
        {"type": "text", "text": TOOL_INTRO},
        {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": TOOL_INPUT},
    ]
    assert message["stop_reason"] == "tool_use"
    assert (out.prompt_tokens, out.completion_tokens) == (INPUT_TOKENS, 7)
    # text deltas at frames 4-7, tool block start at 9, "" at 10, JSON pieces at 11-13
    assert (out.ttft_ms, out.generation_ms) == (40.0, 90.0)


def test_stream_thinking() -> None:
    out = stream("messages_stream_thinking.sse")
    message = reassembled(out)
    assert message["content"] == [
        {"type": "thinking", "thinking": THINKING_TEXT, "signature": signature_for(THINKING_TEXT)},
        {"type": "text", "text": DEFAULT_TEXT},
    ]
    assert out.completion_tokens == 10
    # thinking deltas in frames 4-8, signature 9 (not content), text deltas in frames 12-16
    assert (out.ttft_ms, out.generation_ms) == (40.0, 120.0)


def test_stream_error_event() -> None:
    out = stream("messages_stream_error_event.sse")
    assert out.stream_error == "Overloaded"
    message = reassembled(out)
    assert message["content"] == [{"type": "text", "text": "Hello from"}]
    assert message["stop_reason"] is None
    # input is known from message_start; output was never reported
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (14, None, None)
    assert out.response_model == MODEL


def test_truncated_stream_keeps_partial_text() -> None:
    out = stream("messages_stream_truncated.sse")
    assert out.stream_error is None
    assert reassembled(out)["content"] == [{"type": "text", "text": "Hello from"}]
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (14, None, None)
    assert (out.ttft_ms, out.generation_ms) == (40.0, 10.0)


def test_stream_cut_mid_event_and_mid_tool_input() -> None:
    raw = sample("messages_stream_tool_use.sse")
    cut = raw.index(b'sius\\"}"}}')  # inside the last input_json_delta
    out = stream("", body=raw[:cut])
    tool = reassembled(out)["content"][1]
    assert tool["input"] == '{"location": "Paris", "unit": "cel'  # what arrived, kept as text
    assert out.completion_tokens is None


def test_legacy_message_delta_usage() -> None:
    out = stream("messages_stream_legacy_usage.handmade.sse")
    assert (out.prompt_tokens, out.cached_tokens, out.cache_write_tokens) == (135, 100, 10)
    assert (out.completion_tokens, out.total_tokens) == (15, 150)
    message = reassembled(out)
    assert message["id"] == "msg_legacy" and message["content"] == [
        {"type": "text", "text": "Hello!"}
    ]
    assert message["usage"] == {
        "input_tokens": 25,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 100,
        "output_tokens": 15,
    }
    # deltas in frames 4 and 6 (a ping between them)
    assert (out.ttft_ms, out.generation_ms) == (40.0, 20.0)


def test_message_delta_counts_replace_message_start() -> None:
    events = [
        (
            "message_start",
            {
                "message": {
                    "id": "m1",
                    "model": "x",
                    "usage": {"input_tokens": 10, "output_tokens": 1},
                }
            },
        ),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "a"}}),
        (
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": 12,
                    "cache_read_input_tokens": 4,
                    "output_tokens": 9,
                    "output_tokens_details": {"thinking_tokens": 6},
                },
            },
        ),
    ]
    raw = b"".join(
        b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps({"type": name, **data}))
        for name, data in events
    )
    out = stream("", body=raw)
    assert (out.prompt_tokens, out.cached_tokens, out.cache_write_tokens) == (16, 4, None)
    assert (out.completion_tokens, out.total_tokens, out.reasoning_tokens) == (9, 25, 6)


def test_crlf_framing() -> None:
    raw = sample("messages_stream.sse").replace(b"\n", b"\r\n")
    out = Analysis()
    analyse_response("/v1/messages", raw, SSE, frame_marks(raw, b"\r\n\r\n"), out)
    assert reassembled(out)["content"] == [{"type": "text", "text": DEFAULT_TEXT}]
    assert (out.prompt_tokens, out.completion_tokens) == (22, 5)
    assert out.ttft_ms == 40.0


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"event: message_start\ndata: {not json\n\n",
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":"x","delta":5}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":3,'
        b'"delta":{"type":"text_delta","text":"orphan"}}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","delta":null,"usage":[]}\n\n',
        b'event: error\ndata: {"type":"error","error":"plain"}\n\n',
        b"data: [1,2]\n\n: comment\n\n",
    ],
)
def test_junk_streams_do_not_crash(raw: bytes) -> None:
    out = stream("", body=raw)
    assert out.response_body is not None


def test_orphan_delta_and_string_error() -> None:
    out = stream(
        "",
        body=b'event: content_block_delta\ndata: {"type":"content_block_delta","index":3,'
        b'"delta":{"type":"text_delta","text":"orphan"}}\n\n'
        b'event: error\ndata: {"type":"error","error":"plain"}\n\n',
    )
    assert reassembled(out)["content"] == [{"type": "text", "text": "orphan"}]
    assert out.stream_error == "plain" and out.prompt_tokens is None


def test_non_json_and_empty_bodies() -> None:
    for ctype, raw in ((JSON, b"{oops"), (JSON, b""), ("text/plain", b"upstream down")):
        out = Analysis()
        analyse_response("/v1/messages", raw, ctype, [], out)
        assert out.response_body == raw and out.prompt_tokens is None


# ---------------------------------------------------------------- legacy text completions


def test_complete_stream() -> None:
    out = stream("complete_stream.handmade.sse", endpoint="/v1/complete")
    assert reassembled(out) == {
        "type": "completion",
        "id": "compl_01",
        "completion": " Hello!",
        "model": "claude-2.1",
        "stop_reason": "stop_sequence",
        "stop": "\n\nHuman:",
        "log_id": "compl_01",
    }
    assert out.response_model == "claude-2.1" and out.prompt_tokens is None
    # pieces in frames 1 and 3 (a ping between); the last event is empty
    assert (out.ttft_ms, out.generation_ms) == (10.0, 20.0)
