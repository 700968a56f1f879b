"""Ollama analysis on recorded wire samples: reassembly, server speeds, cold starts, kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from heliograph.providers import analyser
from heliograph.providers.analysis import Analysis
from heliograph.providers.ollama import (
    COLD_START_MS,
    analyse_request,
    analyse_response,
    apply_metrics,
    is_llm_call,
)
from mock_ollama import DEFAULT_TEXT, MID_STREAM_ERROR, THINKING_TEXT, TOOL_ARGUMENTS

SAMPLES = Path(__file__).parent / "samples" / "ollama"
NDJSON = "application/x-ndjson"
JSON = "application/json; charset=utf-8"
PROMPT_TOKENS = len("What is the weather in Paris?") // 4 + 7  # the mock's rule: 14


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def line_marks(body: bytes, step: float = 10.0) -> list[tuple[int, float]]:
    """One upstream read per line, arriving ``step`` ms apart: (end offset, ms)."""
    marks: list[tuple[int, float]] = []
    pos = 0
    while (found := body.find(b"\n", pos)) >= 0:
        pos = found + 1
        marks.append((pos, step * (len(marks) + 1)))
    if pos < len(body):
        marks.append((len(body), step * (len(marks) + 1)))
    return marks


def stream(name: str, endpoint: str = "/api/chat", body: bytes | None = None) -> Analysis:
    raw = sample(name) if body is None else body
    out = Analysis()
    analyse_response(endpoint, raw, NDJSON, line_marks(raw), out)
    assert out.stream is True
    return out


def reassembled(out: Analysis) -> Any:
    assert out.response_body is not None
    return orjson.loads(out.response_body)


def without(doc: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in names}


# ---------------------------------------------------------------- kinds and requests


@pytest.mark.parametrize(
    ("method", "endpoint", "kind"),
    [
        ("POST", "/api/chat", "llm"),
        ("POST", "/api/generate", "llm"),
        ("POST", "/api/embed", "llm"),
        ("POST", "/api/embeddings", "llm"),
        ("POST", "/api/chat/", "llm"),
        ("GET", "/api/tags", "other"),
        ("GET", "/api/version", "other"),
        ("GET", "/api/ps", "other"),
        ("POST", "/api/show", "other"),
        ("POST", "/api/pull", "other"),
        ("POST", "/api/create", "other"),
        ("DELETE", "/api/delete", "other"),
        ("GET", "/api/chat", "other"),
        ("HEAD", "/", "other"),
    ],
)
def test_kind(method: str, endpoint: str, kind: str) -> None:
    out = Analysis()
    analyse_request(method, endpoint, b"", "", out)
    assert out.kind == kind
    assert is_llm_call(method, endpoint) is (kind == "llm")


@pytest.mark.parametrize(
    ("endpoint", "body", "stream"),
    [
        ("/api/chat", {"model": "llama3.2", "messages": []}, True),  # the default
        ("/api/chat", {"model": "llama3.2", "stream": None}, True),
        ("/api/chat", {"model": "llama3.2", "stream": True}, True),
        ("/api/chat", {"model": "llama3.2", "stream": False}, False),
        ("/api/generate", {"model": "llama3.2", "prompt": "x"}, True),
        ("/api/generate", {"model": "llama3.2", "stream": False}, False),
        ("/api/embed", {"model": "nomic-embed-text", "input": "x"}, False),
        ("/api/pull", {"model": "llama3.2"}, True),
        ("/api/show", {"model": "llama3.2"}, False),
    ],
)
def test_request_stream_default(endpoint: str, body: dict[str, Any], stream: bool) -> None:
    out = Analysis()
    analyse_request("POST", endpoint, orjson.dumps({**body, "user": "ignored"}), JSON, out)
    assert out.stream is stream
    assert out.model == body["model"] and out.user is None
    assert isinstance(out.request_doc, dict)


@pytest.mark.parametrize("raw", [b"", b"nope", b"[]", b'{"model": 3}', b'{"stream": false}'])
def test_request_junk(raw: bytes) -> None:
    out = Analysis()
    analyse_request("POST", "/api/chat", raw, JSON, out)
    assert out.kind == "llm" and out.model is None


def test_legacy_name_field() -> None:
    out = Analysis()
    analyse_request("POST", "/api/show", b'{"name": "llama3.2"}', JSON, out)
    assert (out.kind, out.model) == ("other", "llama3.2")


def test_analyser_registry_finds_the_module() -> None:
    assert analyser("ollama").analyse_response is analyse_response


# ---------------------------------------------------------------- non-streaming


def test_chat_non_stream() -> None:
    raw = sample("chat.json")
    out = Analysis()
    analyse_response("/api/chat", raw, JSON, [(len(raw), 140.0)], out)
    assert out.response_body == raw and out.stream is False
    assert out.response_model == "llama3.2"
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (PROMPT_TOKENS, 5, 19)
    # eval: 5 tokens in 100 ms; prompt: 14 tokens in 28 ms; load 20 ms
    assert out.server_tokens_per_s == 50.0
    assert out.prompt_tokens_per_s == 500.0
    assert out.load_ms == 20.0
    assert "cold_start" not in out.extra
    assert out.cached_tokens is None and out.ttft_ms is None


def test_generate_non_stream_drops_context() -> None:
    out = Analysis()
    analyse_response("/api/generate", sample("generate.json"), JSON, [], out)
    doc = reassembled(out)
    original = orjson.loads(sample("generate.json"))
    assert "context" in original and doc == without(original, "context")
    assert doc["response"] == DEFAULT_TEXT
    assert (out.prompt_tokens, out.completion_tokens) == (original["prompt_eval_count"], 5)


def test_embed() -> None:
    raw = sample("embed.json")
    out = Analysis()
    analyse_response("/api/embed", raw, JSON, [], out)
    assert out.response_body == raw
    assert out.response_model == "nomic-embed-text"
    prompt = len("hello worldgoodbye") // 4 + 7
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (prompt, 0, prompt)
    assert out.load_ms == 20.0
    assert out.server_tokens_per_s is None and out.prompt_tokens_per_s is None


def test_legacy_embeddings_report_nothing() -> None:
    out = Analysis()
    analyse_response("/api/embeddings", sample("embeddings_legacy.json"), JSON, [], out)
    assert out.prompt_tokens is None and out.load_ms is None


@pytest.mark.parametrize(
    ("name", "endpoint"), [("error_404.json", "/api/chat"), ("tags.json", "/api/tags")]
)
def test_errors_and_listings_add_nothing(name: str, endpoint: str) -> None:
    raw = sample(name)
    out = Analysis()
    analyse_response(endpoint, raw, JSON, [], out)
    assert out.response_body == raw and out.prompt_tokens is None and out.stream_error is None


# ---------------------------------------------------------------- streams


def test_chat_stream_reassembles_the_non_stream_object() -> None:
    out = stream("chat_stream.ndjson")
    lines = sample("chat_stream.ndjson").splitlines()
    final = orjson.loads(lines[-1])
    doc = reassembled(out)
    assert doc == {**final, "message": {"role": "assistant", "content": DEFAULT_TEXT}}
    assert list(doc) == list(final)
    # the same request without streaming: equal but for the timestamp
    non_stream = orjson.loads(sample("chat.json"))
    assert without(doc, "created_at") == without(non_stream, "created_at")


def test_chat_stream_numbers() -> None:
    out = stream("chat_stream.ndjson")
    assert out.response_model == "llama3.2"
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (PROMPT_TOKENS, 5, 19)
    assert (out.server_tokens_per_s, out.prompt_tokens_per_s, out.load_ms) == (50.0, 500.0, 20.0)
    # content lines 1-5 arrive at 10..50 ms; the final line carries no content
    assert (out.ttft_ms, out.generation_ms) == (10.0, 40.0)
    assert out.stream_error is None


def test_chat_stream_thinking() -> None:
    out = stream("chat_stream_thinking.ndjson")
    message = reassembled(out)["message"]
    assert message == {"role": "assistant", "content": DEFAULT_TEXT, "thinking": THINKING_TEXT}
    assert out.completion_tokens == 10
    assert (out.ttft_ms, out.generation_ms) == (10.0, 90.0)


def test_chat_stream_tool_call() -> None:
    out = stream("chat_stream_tool_call.ndjson")
    message = reassembled(out)["message"]
    (call,) = message["tool_calls"]
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": TOOL_ARGUMENTS}
    assert message["content"] == "" and reassembled(out)["done"] is True
    assert (out.ttft_ms, out.generation_ms) == (10.0, 0.0)
    assert out.completion_tokens == 5


def test_generate_stream() -> None:
    out = stream("generate_stream.ndjson", endpoint="/api/generate")
    doc = reassembled(out)
    final = orjson.loads(sample("generate_stream.ndjson").splitlines()[-1])
    assert doc == {**without(final, "context"), "response": DEFAULT_TEXT}
    assert "context" not in doc
    assert (out.completion_tokens, out.ttft_ms, out.generation_ms) == (5, 10.0, 40.0)


def test_generate_stream_thinking_and_tools() -> None:
    lines = [
        {"model": "q", "created_at": "t1", "response": "", "thinking": "Hmm", "done": False},
        {"model": "q", "created_at": "t2", "response": "Hi", "done": False},
        {"model": "q", "created_at": "t3", "response": "", "done": False, "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
        {"model": "q", "created_at": "t4", "response": "", "done": True, "done_reason": "stop", "context": [1, 2], "eval_count": 3},
    ]  # fmt: skip
    out = stream(
        "", endpoint="/api/generate", body=b"".join(orjson.dumps(x) + b"\n" for x in lines)
    )
    assert reassembled(out) == {
        "model": "q",
        "created_at": "t4",
        "response": "Hi",
        "done": True,
        "done_reason": "stop",
        "eval_count": 3,
        "thinking": "Hmm",
        "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
    }
    assert (out.ttft_ms, out.generation_ms) == (10.0, 20.0)


def test_mid_stream_error_line() -> None:
    out = stream("chat_stream_error.ndjson")
    assert out.stream_error == MID_STREAM_ERROR
    doc = reassembled(out)
    assert doc["message"] == {"role": "assistant", "content": "Hello from"}
    assert doc["done"] is False and list(doc) == ["model", "created_at", "message", "done"]
    assert out.prompt_tokens is None and out.completion_tokens is None
    assert out.server_tokens_per_s is None and out.load_ms is None
    assert out.response_model == "llama3.2"


def test_truncated_stream_keeps_partial_text() -> None:
    out = stream("chat_stream_truncated.ndjson")
    assert out.stream_error is None
    doc = reassembled(out)
    assert doc["message"]["content"] == "Hello from the" and doc["done"] is False
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (None, None, None)
    assert (out.ttft_ms, out.generation_ms) == (10.0, 20.0)


def test_stream_cut_mid_line() -> None:
    raw = sample("chat_stream.ndjson")
    cut = raw.rindex(b'"done_reason"')  # inside the final line
    out = stream("", body=raw[:cut])
    assert reassembled(out)["message"]["content"] == DEFAULT_TEXT
    assert reassembled(out)["done"] is False and out.completion_tokens is None


def test_cold_start() -> None:
    out = stream("chat_stream_cold.ndjson")  # x-mock-cold-ms: 1500
    assert out.load_ms == 1500.0
    assert out.extra == {"cold_start": True}
    assert out.server_tokens_per_s == 50.0


def test_blank_lines_crlf_and_no_final_newline() -> None:
    raw = sample("chat_stream_edge.handmade.ndjson")
    assert not raw.endswith(b"\n") and b"\n\n" in raw and b"\r\n" in raw
    out = stream("", body=raw)
    assert reassembled(out)["message"]["content"] == "Hi there"
    # absent counts are 0; absent durations give no speeds
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (0, 3, 3)
    assert out.server_tokens_per_s is None and out.prompt_tokens_per_s is None
    assert out.load_ms is None and out.extra == {}
    # lines end at 10 (Hi), 20 (blank), 30 (there), 40 (final, no newline)
    assert (out.ttft_ms, out.generation_ms) == (10.0, 20.0)


def test_error_only_stream() -> None:
    out = stream("", body=b'{"error":"model runner has unexpectedly stopped"}\n')
    assert out.stream_error == "model runner has unexpectedly stopped"
    assert out.response_body is None and out.ttft_ms is None


def test_progress_streams_keep_their_raw_bytes() -> None:
    raw = b'{"status":"pulling manifest"}\n{"status":"success"}\n'
    out = stream("", endpoint="/api/pull", body=raw)
    assert out.response_body is None  # the record keeps the raw bytes
    assert out.ttft_ms is None and out.prompt_tokens is None
    out = stream("", endpoint="/api/pull", body=raw + b'{"error":"pull failed"}\n')
    assert out.stream_error == "pull failed"


def test_empty_and_junk_streams() -> None:
    for raw in (b"", b"\n\n", b"not json\n[1]\n", b'{"message": "x"}\n'):
        out = stream("", body=raw)
        assert out.prompt_tokens is None


# ---------------------------------------------------------------- speeds computed by hand


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        (
            {"eval_count": 7, "eval_duration": 3_000_000_000},
            {"server_tokens_per_s": 7 / 3, "completion_tokens": 7, "prompt_tokens": 0},
        ),
        (
            {"prompt_eval_count": 100, "prompt_eval_duration": 300_000_000},
            {"prompt_tokens_per_s": 333.3333333333333, "server_tokens_per_s": None},
        ),
        (
            {"eval_count": 120, "eval_duration": 2_400_000_000, "load_duration": 1_234_567},
            {"server_tokens_per_s": 50.0, "load_ms": 1.234567},
        ),
        ({"eval_count": 5, "eval_duration": 0}, {"server_tokens_per_s": None}),
        ({"eval_count": 0, "eval_duration": 10}, {"server_tokens_per_s": None, "total_tokens": 0}),
        ({"load_duration": 0}, {"load_ms": None}),
        (
            {"eval_count": "5", "prompt_eval_count": True},
            {"completion_tokens": 0, "prompt_tokens": 0},
        ),
    ],
)
def test_speeds_by_hand(final: dict[str, Any], expected: dict[str, Any]) -> None:
    out = Analysis()
    apply_metrics({"done": True, **final}, out)
    for name, value in expected.items():
        assert getattr(out, name) == value, name
    assert (7 / 3) == 2.3333333333333335  # what "by hand" means for the first case


@pytest.mark.parametrize(
    ("load_ns", "cold"),
    [(1_000_000_000, False), (1_000_000_001, True), (20_000_000, False), (65_000_000_000, True)],
)
def test_cold_start_threshold(load_ns: int, cold: bool) -> None:
    assert COLD_START_MS == 1000.0
    out = Analysis()
    apply_metrics({"done": True, "load_duration": load_ns}, out)
    assert out.load_ms == load_ns / 1e6
    assert out.extra.get("cold_start", False) is cold


# ---------------------------------------------------------------- OpenAI-compatible routes


def test_openai_compatible_routes_use_the_openai_analysis() -> None:
    body = {"model": "llama3.2", "messages": [], "stream": True, "user": "u1"}
    out = Analysis()
    analyse_request("POST", "/v1/chat/completions", orjson.dumps(body), "application/json", out)
    assert (out.kind, out.model, out.stream, out.user) == ("llm", "llama3.2", True, "u1")
    raw = sample("compat_chat_stream.sse")
    analyse_response("/v1/chat/completions", raw, "text/event-stream", [], out)
    assert (out.prompt_tokens, out.completion_tokens, out.total_tokens) == (14, 5, 19)
    assert out.response_model == "llama3.2"
    assert reassembled(out)["choices"][0]["message"]["content"] == DEFAULT_TEXT
    models = Analysis()
    analyse_request("GET", "/v1/models", b"", "", models)
    assert models.kind == "other"
