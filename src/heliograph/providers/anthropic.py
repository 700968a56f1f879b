"""Anthropic Messages protocol analysis for the writer: models, usage, timings, reassembly.

Runs off the request path on the raw bytes the gateway spooled. Anthropic counts prompt tokens
differently from everyone else: ``input_tokens`` excludes the tokens read from or written to
the prompt cache. So that records compare across providers, ``prompt_tokens`` here is always
the whole prompt (input + cache writes + cache reads), with the cache parts kept apart in
``cached_tokens`` and ``cache_write_tokens``.

Streams (``event: <name>`` SSE) are reassembled into the exact ``Message`` object the
non-streaming API would have returned, so the dashboard shows one shape whatever the client
asked for. The legacy Text Completions API (``/v1/complete``) is understood too.
"""

from __future__ import annotations

from typing import Any

import orjson

from heliograph.providers.analysis import Analysis, Clock, load_request
from heliograph.providers.sse import iter_events

LLM_ENDPOINTS = frozenset({"/v1/messages", "/v1/complete"})
_CONTENT_DELTAS = {"text_delta": "text", "thinking_delta": "thinking"}


def _path(endpoint: str) -> str:
    return endpoint.split("?", 1)[0].rstrip("/") or "/"


def is_llm_call(method: str, endpoint: str) -> bool:
    """Generation calls count; token counting, batches and model lists do not."""
    return method == "POST" and _path(endpoint) in LLM_ENDPOINTS


def analyse_request(method: str, endpoint: str, body: bytes, ctype: str, out: Analysis) -> None:
    out.kind = "llm" if is_llm_call(method, endpoint) else "other"
    doc = load_request(body, out)
    if doc is None:
        return
    model = doc.get("model")
    out.model = model if isinstance(model, str) else None
    out.stream = doc.get("stream") is True
    metadata = doc.get("metadata")
    if isinstance(metadata, dict):
        user = metadata.get("user_id")
        out.user = user if isinstance(user, str) and user else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def apply_usage(usage: Any, out: Analysis, *, output_known: bool = True) -> None:
    """Normalise Anthropic usage: prompt = input + cache writes + cache reads."""
    if not isinstance(usage, dict):
        return
    fresh = _int(usage.get("input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))
    if fresh is not None or written is not None or read is not None:
        out.prompt_tokens = (fresh or 0) + (written or 0) + (read or 0)
        out.cached_tokens = read
        out.cache_write_tokens = written
    completion = _int(usage.get("output_tokens")) if output_known else None
    out.completion_tokens = completion
    if out.prompt_tokens is not None and completion is not None:
        out.total_tokens = out.prompt_tokens + completion
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and _int(details.get("thinking_tokens")) is not None:
        out.reasoning_tokens = details["thinking_tokens"]


def analyse_response(
    endpoint: str, body: bytes, ctype: str, marks: list[tuple[int, float]], out: Analysis
) -> None:
    """Fill usage, response model, timings and the reassembled body from the response."""
    if ctype.startswith("text/event-stream"):
        out.stream = True
        if _path(endpoint) == "/v1/complete":
            _complete_stream(body, marks, out)
        else:
            _messages_stream(body, marks, out)
        return
    out.response_body = body
    if not body or "json" not in ctype:
        return
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if not isinstance(doc, dict) or doc.get("type") == "error":
        return
    model = doc.get("model")
    out.response_model = model if isinstance(model, str) else None
    apply_usage(doc.get("usage"), out)


def _events(body: bytes) -> list[tuple[str, dict[str, Any], int]]:
    """(type, data, end offset) of each event whose data is a JSON object."""
    found = []
    for event in iter_events(body):
        try:
            doc = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            kind = doc.get("type")
            found.append((kind if isinstance(kind, str) else event.event or "", doc, event.end))
    return found


def _error_text(doc: dict[str, Any]) -> str:
    err = doc.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or "error event in stream")
    return str(err or "error event in stream")


class _Message:
    """Accumulates the events of one Messages stream."""

    def __init__(self) -> None:
        self.head: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.json_parts: dict[int, list[str]] = {}
        self.usage: dict[str, Any] = {}
        self.delta: dict[str, Any] = {}
        self.saw_delta = False

    def start(self, doc: dict[str, Any]) -> None:
        message = doc.get("message")
        if isinstance(message, dict):
            self.head = message
            if isinstance(message.get("usage"), dict):
                self.usage.update(message["usage"])

    def block_start(self, doc: dict[str, Any]) -> None:
        block = doc.get("content_block")
        if isinstance(block, dict):
            self.blocks[_index(doc)] = dict(block)

    def block_delta(self, doc: dict[str, Any]) -> bool:
        """Apply one content delta; True if it carried generated content."""
        delta = doc.get("delta")
        if not isinstance(delta, dict):
            return False
        index = _index(doc)
        block = self.blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind in _CONTENT_DELTAS:
            name = _CONTENT_DELTAS[str(kind)]
            piece = delta.get(name)
            if isinstance(piece, str):
                block[name] = str(block.get(name) or "") + piece
                return bool(piece)
        elif kind == "input_json_delta":
            piece = delta.get("partial_json")
            if isinstance(piece, str):
                self.json_parts.setdefault(index, []).append(piece)
                return bool(piece)
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature")
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))
        return False

    def message_delta(self, doc: dict[str, Any]) -> None:
        self.saw_delta = True
        if isinstance(doc.get("delta"), dict):
            self.delta.update(doc["delta"])
        usage = doc.get("usage")
        if isinstance(usage, dict):
            # Counts are cumulative totals: overwrite, but keep what message_start gave
            # for fields a delta leaves out.
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def assemble(self) -> dict[str, Any]:
        head = self.head or {}
        content = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            if index in self.json_parts:
                raw = "".join(self.json_parts[index])
                try:
                    block["input"] = orjson.loads(raw) if raw else block.get("input", {})
                except orjson.JSONDecodeError:
                    block["input"] = raw  # a truncated stream: keep what arrived
            content.append(block)
        message: dict[str, Any] = {
            "id": head.get("id"),
            "type": "message",
            "role": head.get("role", "assistant"),
            "model": head.get("model"),
            "content": content,
            "stop_reason": self.delta.get("stop_reason", head.get("stop_reason")),
            "stop_sequence": self.delta.get("stop_sequence", head.get("stop_sequence")),
            "usage": self.usage,
        }
        for name, value in head.items():
            message.setdefault(name, value)
        for name, value in self.delta.items():
            if value is not None and name not in ("stop_reason", "stop_sequence"):
                message[name] = value
        return message


def _index(doc: dict[str, Any]) -> int:
    index = doc.get("index")
    return index if isinstance(index, int) else 0


def _messages_stream(body: bytes, marks: list[tuple[int, float]], out: Analysis) -> None:
    clock = Clock(marks)
    first: float | None = None
    last: float | None = None
    acc = _Message()
    for kind, doc, end in _events(body):
        if kind == "content_block_delta":
            if acc.block_delta(doc):
                when = clock.at(end)
                first = when if first is None else first
                last = when
        elif kind == "message_start":
            acc.start(doc)
        elif kind == "content_block_start":
            acc.block_start(doc)
        elif kind == "message_delta":
            acc.message_delta(doc)
        elif kind == "error":
            out.stream_error = _error_text(doc)
    out.ttft_ms = first
    if first is not None and last is not None:
        out.generation_ms = last - first
    message = acc.assemble()
    model = message.get("model")
    out.response_model = model if isinstance(model, str) else None
    if acc.head is not None or acc.saw_delta:
        # Without a message_delta the output count is message_start's placeholder: unknown.
        apply_usage(acc.usage, out, output_known=acc.saw_delta)
    out.response_body = orjson.dumps(message)


def _complete_stream(body: bytes, marks: list[tuple[int, float]], out: Analysis) -> None:
    """Legacy Text Completions: ``event: completion`` pieces, no usage at all."""
    clock = Clock(marks)
    first: float | None = None
    last: float | None = None
    result: dict[str, Any] = {"type": "completion", "id": None, "completion": "", "model": None}
    text: list[str] = []
    for kind, doc, end in _events(body):
        if kind == "error":
            out.stream_error = _error_text(doc)
            continue
        if kind != "completion":
            continue
        for name in ("id", "model", "stop_reason", "stop", "log_id"):
            if doc.get(name) is not None:
                result[name] = doc[name]
        piece = doc.get("completion")
        if isinstance(piece, str) and piece:
            text.append(piece)
            when = clock.at(end)
            first = when if first is None else first
            last = when
    result["completion"] = "".join(text)
    result.setdefault("stop_reason", None)
    out.ttft_ms = first
    if first is not None and last is not None:
        out.generation_ms = last - first
    out.response_model = result["model"] if isinstance(result["model"], str) else None
    out.response_body = orjson.dumps(result)
