"""Ollama native API analysis for the writer: models, token counts, server speeds, reassembly.

Runs off the request path on the raw bytes the gateway spooled. Ollama is the one upstream that
reports its own timings: the final line of a chat or generate call carries durations in
nanoseconds for model loading, prompt processing and generation. From them come the
generation and prompt speeds the server measured (free of network and queueing time) and the
model load time, which tells a cold start (weights read from disk) from a warm call.

NDJSON streams are reassembled into the object the same call with ``stream: false`` returns.
The token ids in ``context`` (generate) are left out: they can run to the whole context window
and say nothing a reader of the record can use. Ollama's OpenAI-compatible routes (``/v1/...``)
are handed to the OpenAI analysis.
"""

from __future__ import annotations

from typing import Any

import orjson

from heliograph.providers import openai
from heliograph.providers.analysis import Analysis, Clock, load_request

LLM_ENDPOINTS = frozenset({"/api/chat", "/api/generate", "/api/embed", "/api/embeddings"})
REPLY_ENDPOINTS = frozenset({"/api/chat", "/api/generate"})  # streams that make one reply
# Endpoints whose ``stream`` defaults to true when the request leaves it out.
STREAMING_ENDPOINTS = frozenset(
    {"/api/chat", "/api/generate", "/api/pull", "/api/push", "/api/create"}
)
# A warm model reports a load_duration of a few milliseconds (finding the loaded runner); reading
# weights from disk into memory takes seconds even for small models. One second sits well
# between the two, so a larger load time means the request paid for a cold start.
COLD_START_MS = 1000.0
_TEXT_FIELDS = ("content", "thinking")


def _path(endpoint: str) -> str:
    return endpoint.split("?", 1)[0].rstrip("/") or "/"


def _compat(endpoint: str) -> str | None:
    """The OpenAI-style endpoint of an OpenAI-compatible route, else None."""
    path = _path(endpoint)
    return path[3:] if path.startswith("/v1/") else None


def is_llm_call(method: str, endpoint: str) -> bool:
    """Generation and embedding calls count; model management and listings do not."""
    return method == "POST" and _path(endpoint) in LLM_ENDPOINTS


def analyse_request(method: str, endpoint: str, body: bytes, ctype: str, out: Analysis) -> None:
    compat = _compat(endpoint)
    if compat is not None:
        openai.analyse_request(method, compat, body, ctype, out)
        return
    out.kind = "llm" if is_llm_call(method, endpoint) else "other"
    doc = load_request(body, out)
    if doc is None:
        return
    model = doc.get("model", doc.get("name"))
    out.model = model if isinstance(model, str) and model else None
    out.stream = _path(endpoint) in STREAMING_ENDPOINTS and doc.get("stream") is not False


def _count(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _rate(count: int, duration_ns: int) -> float | None:
    return count * 1e9 / duration_ns if count and duration_ns else None


def apply_metrics(doc: dict[str, Any], out: Analysis) -> None:
    """Tokens and server timings of a final object (every field optional, absent means 0)."""
    if "embedding" in doc and "prompt_eval_count" not in doc:
        return  # the legacy /api/embeddings reply reports no counts at all
    prompt = _count(doc, "prompt_eval_count")
    completion = _count(doc, "eval_count")
    out.prompt_tokens = prompt
    out.completion_tokens = completion
    out.total_tokens = prompt + completion
    out.server_tokens_per_s = _rate(completion, _count(doc, "eval_duration"))
    out.prompt_tokens_per_s = _rate(prompt, _count(doc, "prompt_eval_duration"))
    load = _count(doc, "load_duration")
    out.load_ms = load / 1e6 if load else None
    if out.load_ms is not None and out.load_ms > COLD_START_MS:
        out.extra["cold_start"] = True


def analyse_response(
    endpoint: str, body: bytes, ctype: str, marks: list[tuple[int, float]], out: Analysis
) -> None:
    """Fill usage, response model, timings and the reassembled body from the response."""
    compat = _compat(endpoint)
    if compat is not None:
        openai.analyse_response(compat, body, ctype, marks, out)
        return
    if "ndjson" in ctype:
        out.stream = True
        _stream(body, marks, out, reassemble=_path(endpoint) in REPLY_ENDPOINTS)
        return
    out.response_body = body
    if not body or "json" not in ctype:
        return
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if not isinstance(doc, dict) or "error" in doc:
        return
    model = doc.get("model")
    out.response_model = model if isinstance(model, str) else None
    if "context" in doc:
        doc.pop("context")
        out.response_body = orjson.dumps(doc)
    if "done" in doc or "prompt_eval_count" in doc or "embedding" in doc:
        apply_metrics(doc, out)


def _lines(body: bytes) -> list[tuple[dict[str, Any], int]]:
    """(object, end offset) of each complete JSON line; blank and torn lines are skipped."""
    found = []
    pos = 0
    size = len(body)
    while pos < size:
        nxt = body.find(b"\n", pos)
        end = size if nxt < 0 else nxt + 1
        line = body[pos:end].strip()
        pos = end
        if not line:
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            found.append((doc, end))
    return found


class _Reply:
    """Accumulates the lines of one chat or generate stream."""

    def __init__(self) -> None:
        self.first: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None
        self.is_chat = False
        self.role = "assistant"
        self.text: dict[str, list[str]] = {"content": [], "thinking": [], "response": []}
        self.tool_calls: list[Any] = []

    def add(self, doc: dict[str, Any]) -> bool:
        """Take one line; True if it carried generated content."""
        self.first = self.first or doc
        self.last = doc
        if doc.get("done") is True:
            self.final = doc
        produced = False
        message = doc.get("message")
        if isinstance(message, dict):
            self.is_chat = True
            if isinstance(message.get("role"), str):
                self.role = message["role"]
            produced = self._take(message, _TEXT_FIELDS)
        else:
            produced = self._take(doc, ("response", "thinking"))
            message = doc
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            self.tool_calls.extend(calls)
            produced = True
        return produced

    def _take(self, source: dict[str, Any], names: tuple[str, ...]) -> bool:
        produced = False
        for name in names:
            piece = source.get(name)
            if isinstance(piece, str) and piece:
                self.text[name].append(piece)
                produced = True
        return produced

    def assemble(self) -> dict[str, Any]:
        if self.final is not None:
            result = {k: v for k, v in self.final.items() if k != "context"}
        else:  # truncated: what a reader needs from what arrived
            base = self.last or {}
            result = {k: base[k] for k in ("model", "created_at") if k in base}
            result["done"] = False
        thinking = "".join(self.text["thinking"])
        if self.is_chat:
            message = dict(result.get("message") or {})
            message["role"] = message.get("role") or self.role
            message["content"] = "".join(self.text["content"])
            if thinking:
                message["thinking"] = thinking
            if self.tool_calls:
                message["tool_calls"] = self.tool_calls
            result["message"] = message
        else:
            result["response"] = "".join(self.text["response"])
            if thinking:
                result["thinking"] = thinking
            if self.tool_calls:
                result["tool_calls"] = self.tool_calls
        if self.final is None:  # Ollama's key order: the text before ``done``
            result["done"] = result.pop("done")
        return result


def _stream(
    body: bytes, marks: list[tuple[int, float]], out: Analysis, *, reassemble: bool
) -> None:
    clock = Clock(marks)
    first: float | None = None
    last: float | None = None
    reply = _Reply()
    for doc, end in _lines(body):
        if "error" in doc and "done" not in doc:
            err = doc["error"]
            message = err.get("message") if isinstance(err, dict) else err
            out.stream_error = str(message or "error line in stream")
            continue
        if reply.add(doc):
            when = clock.at(end)
            first = when if first is None else first
            last = when
    out.ttft_ms = first
    if first is not None and last is not None:
        out.generation_ms = last - first
    if reply.first is None or not reassemble:
        return  # progress lines (pull, push, create) or only errors: the raw bytes are the record
    model = (reply.final or reply.first).get("model")
    out.response_model = model if isinstance(model, str) else None
    if reply.final is not None:
        apply_metrics(reply.final, out)
    out.response_body = orjson.dumps(reply.assemble())
