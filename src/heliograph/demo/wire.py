"""The simulated providers' answers as bytes on the wire, each piece with the time it leaves.

A :class:`Reply` is what one request gets: status, content type, when the response headers go
out and the body in timed pieces (one per token when streaming). The simulator plays a reply
to a live client by waiting for each piece's time; the demo's backfilled week reads the same
pieces and times without waiting. The shapes follow the providers' own: OpenAI chat
completions (JSON, or SSE chunks with tool-call deltas and the usage chunk), Anthropic messages
(JSON, or its named SSE events) and Ollama's ``/api/chat`` (JSON, or NDJSON lines ending with
its durations in nanoseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

JSON = "application/json; charset=utf-8"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class Reply:
    """One response: the body's pieces, each with the milliseconds after the request arrived
    at which it leaves. A stream's headers leave before its body; a JSON answer's with it."""

    status: int
    content_type: str
    headers_ms: float
    parts: tuple[tuple[float, bytes], ...]
    stream: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.parts)

    @property
    def done_ms(self) -> float:
        return self.parts[-1][0] if self.parts else self.headers_ms


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(slots=True)
class Turn:
    """What the model answers (text, or one tool call) and when each output token is ready."""

    model: str
    prompt_tokens: int
    pieces: list[str]  # the output, one piece per token
    times: list[float]  # ms after arrival at which each piece is ready
    text: bool = True  # False: the pieces are a tool call's arguments
    tool: ToolCall | None = None
    token_ms: float = 20.0  # time to generate one token
    load_ms: float = 0.0  # spent loading the model (Ollama)
    prompt_ms: float = 0.0  # spent reading the prompt (Ollama)
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (Anthropic)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first_ms(self) -> float:
        return self.times[0] if self.times else 0.0

    @property
    def done_ms(self) -> float:
        return self.times[-1] if self.times else 0.0

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)

    @property
    def content(self) -> str:
        return "".join(self.pieces)


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


# -- OpenAI ------------------------------------------------------------------------------------


def openai_reply(turn: Turn, rid: str, created: int, stream: bool, usage_chunk: bool) -> Reply:
    """A chat completion, or its SSE stream (with the usage chunk when it was asked for)."""
    usage = {
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "total_tokens": turn.prompt_tokens + turn.completion_tokens,
    }
    finish = "stop" if turn.tool is None else "tool_calls"
    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": turn.content, "refusal": None}
        if turn.tool is not None:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": turn.tool.id,
                        "type": "function",
                        "function": {"name": turn.tool.name, "arguments": turn.tool.arguments},
                    }
                ],
            }
        doc = {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": turn.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": usage,
            "system_fingerprint": "fp_simulated",
        }
        return Reply(200, JSON, turn.done_ms, ((turn.done_ms, orjson.dumps(doc)),))

    # Every chunk is the same object around its delta: serialise that once.
    head = orjson.dumps(
        {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": turn.model,
            "system_fingerprint": "fp_simulated",
        }
    )
    prefix = b"data: " + head[:-1] + b',"choices":[{"index":0,"delta":'

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        finish = b"null" if reason is None else orjson.dumps(reason)
        tail = b',"logprobs":null,"finish_reason":' + finish + b"}]}\n\n"
        return prefix + orjson.dumps(delta) + tail

    parts = [(2.0, chunk({"role": "assistant", "content": ""}))]
    if turn.tool is not None:
        call = {"index": 0, "id": turn.tool.id, "type": "function"}
        function = {"name": turn.tool.name, "arguments": ""}
        parts.append((turn.first_ms, chunk({"tool_calls": [{**call, "function": function}]})))
        for at, piece in zip(turn.times, turn.pieces, strict=True):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            parts.append((at, chunk(delta)))
    else:
        for at, piece in zip(turn.times, turn.pieces, strict=True):
            parts.append((at, chunk({"content": piece})))
    end = turn.done_ms + 0.5
    parts.append((end, chunk({}, finish)))
    if usage_chunk:
        tail = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": turn.model,
            "choices": [],
            "usage": usage,
        }
        parts.append((end, _sse(tail)))
    parts.append((end, b"data: [DONE]\n\n"))
    return Reply(200, SSE, 1.0, tuple(parts), stream=True)


def openai_error(status: int, message: str, kind: str, code: str | None, at_ms: float) -> Reply:
    doc = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status, JSON, at_ms, ((at_ms, orjson.dumps(doc)),))


# -- Anthropic ---------------------------------------------------------------------------------


def anthropic_reply(turn: Turn, rid: str, stream: bool) -> Reply:
    """A message, or its stream of named events."""
    usage = {
        "input_tokens": turn.prompt_tokens - turn.cached_tokens,
        "output_tokens": turn.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": turn.cached_tokens,
    }
    if not stream:
        doc = {
            "id": rid,
            "type": "message",
            "role": "assistant",
            "model": turn.model,
            "content": [{"type": "text", "text": turn.content}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        return Reply(200, JSON, turn.done_ms, ((turn.done_ms, orjson.dumps(doc)),))
    start: dict[str, Any] = {
        "id": rid,
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    parts = [
        (2.0, _sse({"type": "message_start", "message": start}, "message_start")),
        (
            2.0,
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
        ),
    ]
    for at, piece in zip(turn.times, turn.pieces, strict=True):
        delta = {"type": "text_delta", "text": piece}
        event = {"type": "content_block_delta", "index": 0, "delta": delta}
        parts.append((at, _sse(event, "content_block_delta")))
    end = turn.done_ms + 0.5
    parts += [
        (end, _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")),
        (
            end,
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": turn.completion_tokens},
                },
                "message_delta",
            ),
        ),
        (end, _sse({"type": "message_stop"}, "message_stop")),
    ]
    return Reply(200, SSE, 1.0, tuple(parts), stream=True)


def anthropic_error(status: int, kind: str, message: str, at_ms: float) -> Reply:
    doc = {"type": "error", "error": {"type": kind, "message": message}}
    return Reply(status, JSON, at_ms, ((at_ms, orjson.dumps(doc)),))


# -- Ollama ------------------------------------------------------------------------------------


def _ollama_time(now: float, seconds: dict[int, str]) -> str:
    """Ollama's ``created_at`` (RFC 3339, UTC); ``seconds`` caches the part before the dot."""
    whole = int(now)
    head = seconds.get(whole)
    if head is None:
        head = seconds[whole] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{head}.{int((now - whole) * 1e6):06d}Z"


def ollama_reply(turn: Turn, now: float, stream: bool) -> Reply:
    """``/api/chat``: one JSON object, or NDJSON lines (headers leave with the first one)."""
    ms = 1_000_000  # Ollama's durations are nanoseconds
    seconds: dict[int, str] = {}
    eval_ms = turn.done_ms - turn.first_ms + turn.token_ms  # the first token's time too
    final: dict[str, Any] = {
        "model": turn.model,
        "created_at": _ollama_time(now + turn.done_ms / 1000, seconds),
        "message": {"role": "assistant", "content": ""},
        "done_reason": "stop",
        "done": True,
        "total_duration": int(turn.done_ms * ms),
        "load_duration": int(turn.load_ms * ms),
        "prompt_eval_count": turn.prompt_tokens,
        "prompt_eval_duration": int(turn.prompt_ms * ms),
        "eval_count": turn.completion_tokens,
        "eval_duration": int(eval_ms * ms),
    }
    if not stream:
        final["message"]["content"] = turn.content
        body = orjson.dumps(final)
        return Reply(200, JSON, turn.done_ms, ((turn.done_ms, body),))
    parts = []
    for at, piece in zip(turn.times, turn.pieces, strict=True):
        line = {
            "model": turn.model,
            "created_at": _ollama_time(now + at / 1000, seconds),
            "message": {"role": "assistant", "content": piece},
            "done": False,
        }
        parts.append((at, orjson.dumps(line) + b"\n"))
    parts.append((turn.done_ms + 0.5, orjson.dumps(final) + b"\n"))
    return Reply(200, NDJSON, turn.first_ms, tuple(parts), stream=True)


def ollama_error(status: int, message: str, at_ms: float) -> Reply:
    return Reply(status, JSON, at_ms, ((at_ms, orjson.dumps({"error": message})),))


def plain_json(doc: dict[str, Any], at_ms: float = 2.0) -> Reply:
    """An answer that is not a model's (model lists)."""
    return Reply(200, JSON, at_ms, ((at_ms, orjson.dumps(doc)),))


def not_found() -> Reply:
    return Reply(404, JSON, 1.0, ((1.0, b'{"error": "not found"}'),))
