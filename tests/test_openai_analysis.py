"""OpenAI analysis in the writer: stream reassembly, usage, timings and kinds, on recorded bytes.

The samples in ``tests/samples`` are either captured from the byte-faithful mock upstream and
the openai SDK (see ``samples/capture.py``) or hand-written in the shape other servers use
(``*.handmade.*``: n=2, DeepSeek ``reasoning_content``, OpenRouter/Ollama ``reasoning``,
parallel tool calls, CRLF framing).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from heliograph.providers.analysis import Analysis, apply_usage
from heliograph.providers.openai import analyse_request, analyse_response, is_llm_call

SAMPLES = Path(__file__).parent / "samples"
SSE = "text/event-stream; charset=utf-8"
TEXT = "Hello from the mock upstream."
_SEP = re.compile(rb"\r\n\r\n|\n\n")


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def event_marks(raw: bytes, t0: float = 100.0, step: float = 10.0) -> list[tuple[int, float]]:
    """One read per SSE event (comments included): event k arrives at t0 + k * step ms."""
    return [(m.end(), t0 + k * step) for k, m in enumerate(_SEP.finditer(raw))]


def analyse(
    raw: bytes,
    endpoint: str = "/chat/completions",
    marks: list[tuple[int, float]] | None = None,
    ctype: str = SSE,
) -> tuple[Analysis, Any]:
    out = Analysis()
    analyse_response(endpoint, raw, ctype, event_marks(raw) if marks is None else marks, out)
    assert out.response_body is not None
    try:
        doc = orjson.loads(out.response_body)
    except orjson.JSONDecodeError:
        doc = None
    return out, doc


def tokens(a: Analysis) -> tuple[int | None, ...]:
    return (
        a.prompt_tokens,
        a.completion_tokens,
        a.total_tokens,
        a.cached_tokens,
        a.reasoning_tokens,
    )


# ------------------------------------------------------------------------------ chat streams


def test_chat_stream_with_usage_is_reassembled_exactly() -> None:
    out, doc = analyse(sample("chat_stream_usage.sse"))
    assert doc == {
        "id": "chatcmpl-6b91552e8cd2449784f74a3f0d4f0",
        "object": "chat.completion",
        "created": 1795857631,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_mock0000",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 7, "total_tokens": 21},
    }
    assert tokens(out) == (14, 7, 21, 3, 2)
    assert out.stream is True and out.stream_error is None
    assert out.response_model == "gpt-4o-mini"
    # events: role 100, content 110..150, finish 160, usage 170, [DONE] 180
    assert out.ttft_ms == 110.0
    assert out.generation_ms == 40.0


def test_chat_stream_without_usage_has_no_tokens() -> None:
    out, doc = analyse(sample("chat_stream_no_usage.sse"))
    assert tokens(out) == (None, None, None, None, None)
    assert "usage" not in doc
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": TEXT}
    assert doc["choices"][0]["finish_reason"] == "stop"
    assert (out.ttft_ms, out.generation_ms) == (110.0, 40.0)


def test_crlf_framing_gives_the_same_analysis_as_lf() -> None:
    lf, crlf = sample("chat_stream_no_usage.sse"), sample("chat_stream_crlf.handmade.sse")
    assert b"\r\n\r\n" in crlf and crlf.replace(b"\r\n", b"\n") == lf
    a, doc_a = analyse(lf)
    b, doc_b = analyse(crlf)
    assert doc_b == doc_a
    assert doc_b["choices"][0]["message"]["content"] == TEXT
    assert (b.ttft_ms, b.generation_ms) == (a.ttft_ms, a.generation_ms) == (110.0, 40.0)


def test_tool_call_deltas_are_merged() -> None:
    out, doc = analyse(sample("chat_stream_tool_call.sse"))
    [choice] = doc["choices"]
    assert choice == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_00f84f06ecf64befa41593ac",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location": "Paris", "unit": "celsius"}',
                    },
                }
            ],
        },
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert tokens(out)[:3] == (14, 5, 19)
    assert out.ttft_ms == 100.0  # the call's first delta names the function


def test_parallel_tool_calls_are_merged_by_index() -> None:
    out, doc = analyse(sample("chat_stream_parallel_tools.handmade.sse"))
    message = doc["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_A1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_B2",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
            },
        ],
    }
    assert doc["choices"][0]["finish_reason"] == "tool_calls"
    assert "usage" not in doc and out.prompt_tokens is None


def test_two_choices_are_reassembled_separately() -> None:
    out, doc = analyse(sample("chat_stream_n2.handmade.sse"))
    assert doc == {
        "id": "chatcmpl-AnN2x",
        "object": "chat.completion",
        "created": 1730000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Red apple"},
                "logprobs": None,
                "finish_reason": "length",
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": "Blue sky"},
                "logprobs": None,
                "finish_reason": "stop",
            },
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }
    # events: role 100, role 110, Red 120, Blue 130, apple 140, sky 150, stops, usage
    assert (out.ttft_ms, out.generation_ms) == (120.0, 30.0)


def test_reasoning_content_deltas_deepseek_style() -> None:
    out, doc = analyse(sample("chat_stream_reasoning_content.handmade.sse"))
    assert doc["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello!",
                "reasoning_content": "The user greets me.",
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert doc["model"] == "deepseek-reasoner" and "service_tier" not in doc
    assert tokens(out) == (10, 8, 18, 0, 6)  # usage rides on the last choice chunk
    # the first reasoning token counts as the first token; the empty opening one does not
    assert (out.ttft_ms, out.generation_ms) == (110.0, 30.0)


def test_reasoning_deltas_openrouter_ollama_style() -> None:
    out, doc = analyse(sample("chat_stream_reasoning.handmade.sse"))
    assert doc["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hi there",
                "reasoning": "Okay, a greeting.",
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert doc["id"] == "gen-1750000000-AbCdEfGh" and doc["model"] == "qwen/qwen3-8b"
    assert tokens(out) == (11, 20, 31, None, 16)
    # event 0 and 3 are ": OPENROUTER PROCESSING" comments; reasoning starts at event 1
    assert (out.ttft_ms, out.generation_ms) == (110.0, 40.0)


def test_legacy_completions_stream() -> None:
    out, doc = analyse(sample("completions_stream.sse"), endpoint="/completions")
    assert doc == {
        "id": "cmpl-d4f479d8372b46dcb0ca58e78f32e",
        "object": "text_completion",
        "created": 1795857631,
        "model": "gpt-3.5-turbo-instruct",
        "system_fingerprint": "fp_mock0000",
        "choices": [{"index": 0, "text": TEXT, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
    }
    assert (out.ttft_ms, out.generation_ms) == (100.0, 40.0)


def test_error_event_mid_stream() -> None:
    out, doc = analyse(sample("chat_stream_error_event.sse"))
    assert out.stream_error == "mock mid-stream failure"
    assert doc["choices"][0]["message"]["content"] == "Hello from"
    assert out.ttft_ms == 110.0


def test_ttft_is_the_arrival_of_the_read_that_completes_the_event() -> None:
    raw = sample("chat_stream_usage.sse")
    ends = [m.end() for m in _SEP.finditer(raw)]
    # every read stops one byte short of an event's end: event k completes in read k + 1
    marks = [(end - 1, 1000.0 + k) for k, end in enumerate(ends)] + [(len(raw), 2000.0)]
    out, _ = analyse(raw, marks=marks)
    assert out.ttft_ms == 1002.0  # first content is event 1, completed by read 2
    assert out.generation_ms == 4.0
    # one read carrying everything up to the second content chunk
    marks = [(ends[2], 50.0), (len(raw), 90.0)]
    out, _ = analyse(raw, marks=marks)
    assert (out.ttft_ms, out.generation_ms) == (50.0, 40.0)
    # a mark exactly on an event's end is that event's arrival
    marks = [(ends[0], 10.0), (ends[1], 20.0), (len(raw), 30.0)]
    out, _ = analyse(raw, marks=marks)
    assert out.ttft_ms == 20.0


def test_no_marks_means_no_timings() -> None:
    out, doc = analyse(sample("chat_stream_usage.sse"), marks=[])
    assert (out.ttft_ms, out.generation_ms) == (None, None)
    assert doc["choices"][0]["message"]["content"] == TEXT


def test_data_field_without_a_space_and_a_truncated_last_event() -> None:
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    raw = (
        b"data:"
        + orjson.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": "ab"}}]})
        + b"\n\ndata: "
        + orjson.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": "cd"}}]})[:20]
    )
    _, doc = analyse(raw)
    assert doc["choices"][0]["message"]["content"] == "ab"


def _chat_chunk(text: str) -> bytes:
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    return b"data: " + orjson.dumps({**chunk, "choices": [choice]}) + b"\n\n"


def _responses_events(text: str) -> bytes:
    response = {"id": "resp_u", "object": "response", "model": "gpt-4o", "output": []}
    message = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }
    usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    events = [
        {"type": "response.created", "response": {**response, "status": "in_progress"}},
        {"type": "response.output_text.delta", "output_index": 0, "delta": text},
        {
            "type": "response.completed",
            "response": {**response, "status": "completed", "output": [message], "usage": usage},
        },
    ]
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


SEPARATORS = ["\u2028", "\u2029", "\x85"]


@pytest.mark.parametrize("char", SEPARATORS, ids=["LS", "PS", "NEL"])
def test_unicode_line_separators_in_lf_chat_streams(char: str) -> None:
    text = f"one{char}two"
    raw = _chat_chunk(text) + b"data: [DONE]\n\n"
    assert text.encode() in raw  # orjson, like serde_json / pydantic, leaves them unescaped
    _, doc = analyse(raw)
    assert doc["choices"][0]["message"]["content"] == text


@pytest.mark.parametrize("char", SEPARATORS, ids=["LS", "PS", "NEL"])
@pytest.mark.parametrize("framing", ["chat-crlf", "responses"])
def test_unicode_line_separators_are_not_line_breaks(framing: str, char: str) -> None:
    text = f"one{char}two"
    if framing == "chat-crlf":
        raw = (_chat_chunk(text) + b"data: [DONE]\n\n").replace(b"\n", b"\r\n")
        _, doc = analyse(raw)
        assert doc["choices"][0]["message"]["content"] == text
    else:
        out, doc = analyse(_responses_events(text), endpoint="/responses")
        assert doc["status"] == "completed"
        assert doc["output"][0]["content"][0]["text"] == text
        assert out.total_tokens == 5


# ------------------------------------------------------------------------------ Responses API


def test_responses_stream_takes_the_terminal_response() -> None:
    raw = sample("responses_stream.sse")
    out, doc = analyse(raw, endpoint="/responses")
    terminal = [e for e in raw.split(b"\n\n") if e.startswith(b"event: response.completed\n")]
    assert len(terminal) == 1
    expected = orjson.loads(terminal[0].split(b"\ndata: ", 1)[1])["response"]
    assert doc == expected
    assert doc["status"] == "completed" and doc["output"][0]["content"][0]["text"] == TEXT
    assert tokens(out) == (9, 9, 18, 1, 4)
    assert out.response_model == "gpt-4o-mini"
    # created, in_progress, item added, part added, then deltas at 140..180
    assert (out.ttft_ms, out.generation_ms) == (140.0, 40.0)
    assert out.stream_error is None


def test_responses_stream_cut_before_completed_keeps_the_text() -> None:
    out, doc = analyse(sample("responses_stream_truncated.sse"), endpoint="/responses")
    assert doc["id"] == "resp_fc811e41fea04d44945f9f9f0c4db22b"
    assert doc["output_text"] == "Hello from"
    assert doc["model"] == "gpt-4o-mini" and out.response_model == "gpt-4o-mini"
    assert tokens(out) == (None, None, None, None, None)
    assert (out.ttft_ms, out.generation_ms) == (140.0, 10.0)


def test_responses_stream_cut_before_completed_is_marked_incomplete() -> None:
    _, doc = analyse(sample("responses_stream_truncated.sse"), endpoint="/responses")
    assert doc["status"] == "incomplete"


def test_responses_failed_event_sets_the_stream_error() -> None:
    response = {"id": "resp_f", "object": "response", "status": "failed", "model": "gpt-4o"}
    failed = {**response, "error": {"code": "server_error", "message": "The model failed"}}
    raw = (
        b"event: response.created\ndata: "
        + orjson.dumps({"type": "response.created", "sequence_number": 0, "response": response})
        + b"\n\nevent: response.failed\ndata: "
        + orjson.dumps({"type": "response.failed", "sequence_number": 1, "response": failed})
        + b"\n\n"
    )
    out, doc = analyse(raw, endpoint="/responses")
    assert out.stream_error == "The model failed"
    assert doc == failed


# ------------------------------------------------------------------------------ JSON bodies


def test_non_stream_chat_json() -> None:
    raw = sample("chat.json")
    out = Analysis()
    analyse_response("/chat/completions", raw, "application/json", [(len(raw), 30.0)], out)
    assert out.response_body == raw  # stored as received
    assert tokens(out) == (14, 5, 19, 0, 0)
    assert out.response_model == "gpt-4o-mini"
    assert out.stream is False and out.ttft_ms is None


def test_non_stream_responses_json_uses_input_output_tokens() -> None:
    raw = sample("responses.json")
    out = Analysis()
    analyse_response("/responses", raw, "application/json", [], out)
    assert tokens(out) == (9, 5, 14, 0, 0)
    assert out.response_model == "gpt-4o-mini"


def test_embeddings_json() -> None:
    out = Analysis()
    analyse_response("/embeddings", sample("embeddings.json"), "application/json", [], out)
    assert tokens(out)[:3] == (9, 0, 9)
    assert out.response_model == "text-embedding-3-small"


def test_non_json_and_broken_json_bodies_are_kept_raw() -> None:
    for ctype, body in [("audio/mpeg", b"ID3\x00\xff"), ("application/json", b'{"broken')]:
        out = Analysis()
        analyse_response("/audio/speech", body, ctype, [], out)
        assert out.response_body == body and out.prompt_tokens is None


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "prompt_tokens": 14,
                "completion_tokens": 7,
                "total_tokens": 21,
                "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
            (14, 7, 21, 3, 2),
        ),
        (
            {
                "input_tokens": 9,
                "input_tokens_details": {"cached_tokens": 1},
                "output_tokens": 9,
                "output_tokens_details": {"reasoning_tokens": 4},
                "total_tokens": 18,
            },
            (9, 9, 18, 1, 4),
        ),
        ({"prompt_tokens": 5, "total_tokens": 5}, (5, 0, 5, None, None)),
        ({"prompt_tokens": 5, "completion_tokens": 2}, (5, 2, 7, None, None)),
        ({"prompt_tokens": None, "completion_tokens": "3"}, (None, None, None, None, None)),
        (None, (None, None, None, None, None)),
    ],
    ids=["chat", "responses", "embeddings", "no-total", "junk", "none"],
)
def test_apply_usage_reads_both_shapes(usage: Any, expected: tuple[int | None, ...]) -> None:
    out = Analysis()
    apply_usage(usage, out)
    assert tokens(out) == expected


# ------------------------------------------------------------------------------ requests


@pytest.mark.parametrize(
    ("method", "endpoint", "kind"),
    [
        ("POST", "/chat/completions", "llm"),
        ("POST", "/completions", "llm"),
        ("POST", "/responses", "llm"),
        ("POST", "/embeddings", "llm"),
        ("POST", "/moderations", "llm"),
        ("POST", "/audio/transcriptions", "llm"),
        ("POST", "/audio/speech", "llm"),
        ("POST", "/images/generations", "llm"),
        ("GET", "/models", "other"),
        ("GET", "/models/gpt-4o-mini", "other"),
        ("GET", "/responses/resp_123", "other"),
        ("DELETE", "/responses/resp_123", "other"),
        ("GET", "/chat/completions", "other"),
        ("POST", "/chat/completions/chatcmpl-123", "other"),
        ("POST", "/files", "other"),
        ("POST", "/batches", "other"),
        ("POST", "/vector_stores", "other"),
    ],
)
def test_kind_classification(method: str, endpoint: str, kind: str) -> None:
    assert is_llm_call(method, endpoint) is (kind == "llm")
    out = Analysis()
    analyse_request(method, endpoint, b"", "", out)
    assert out.kind == kind


@pytest.mark.parametrize("endpoint", ["/responses/resp_123/cancel", "/responses/input_tokens"])
def test_responses_sub_endpoints_are_not_llm_calls(endpoint: str) -> None:
    assert not is_llm_call("POST", endpoint)


def test_json_request_fields() -> None:
    out = Analysis()
    body = b'\n {"model": "gpt-4o-mini", "stream": true, "user": "u-1", "messages": []}'
    analyse_request("POST", "/chat/completions", body, "application/json", out)
    assert (out.kind, out.model, out.stream, out.user) == ("llm", "gpt-4o-mini", True, "u-1")
    assert out.request_doc["messages"] == []

    out = Analysis()
    body = b'{"model": 5, "stream": "true", "user": ""}'
    analyse_request("POST", "/chat/completions", body, "application/json", out)
    assert (out.model, out.stream, out.user) == (None, False, None)

    out = Analysis()
    analyse_request("POST", "/chat/completions", b'{"model": "x"', "application/json", out)
    assert (out.kind, out.model) == ("llm", None)


def test_multipart_model_of_a_transcription_upload() -> None:
    body = sample("audio_transcription_minimal.multipart")
    ctype = (SAMPLES / "audio_transcription_minimal.content-type").read_text()
    assert ctype.startswith("multipart/form-data; boundary=")
    out = Analysis()
    analyse_request("POST", "/audio/transcriptions", body, ctype, out)
    assert (out.kind, out.model, out.stream) == ("llm", "gpt-4o-mini-transcribe", False)


def test_multipart_model_when_more_fields_follow() -> None:
    body = sample("audio_transcription.multipart")  # model, language, response_format, file
    ctype = (SAMPLES / "audio_transcription.content-type").read_text()
    out = Analysis()
    analyse_request("POST", "/audio/transcriptions", body, ctype, out)
    assert out.model == "whisper-1"
