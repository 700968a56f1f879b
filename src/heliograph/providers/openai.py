"""OpenAI protocol analysis for the writer: models, usage, timings and stream reassembly.

Runs off the request path on the raw bytes the gateway spooled. Covers Chat Completions,
legacy Completions, the Responses API, embeddings, moderations and the audio/image endpoints,
and every OpenAI-compatible server that speaks the same wire format.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from heliograph.providers.sse import iter_data, iter_events

LLM_PREFIXES = (
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/responses",
    "/moderations",
    "/audio/",
    "/images/",
)
# The model part of a multipart form: its header lines, a blank line, then the value.
_MULTIPART_MODEL = re.compile(rb'name="model"(?:\r\n[^\r\n]+)*?\r\n\r\n([^\r\n]{1,255})\r\n')


@dataclass(slots=True)
class Analysis:
    """What the writer learns from one exchange; None means unknown."""

    kind: str = "other"
    model: str | None = None
    response_model: str | None = None
    stream: bool = False
    user: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens read from the provider's cache
    cache_write_tokens: int | None = None  # prompt tokens written to it (Anthropic)
    reasoning_tokens: int | None = None
    ttft_ms: float | None = None
    generation_ms: float | None = None  # first token to last token, from stream timing
    server_tokens_per_s: float | None = None  # generation speed the server itself reported
    prompt_tokens_per_s: float | None = None  # prompt processing speed the server reported
    load_ms: float | None = None  # model load time the server reported (cold start)
    stream_error: str | None = None
    response_body: bytes | None = None
    request_doc: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


_AZURE_DEPLOYMENT = re.compile(r"^/(?:openai/)?deployments/([^/]+)(/.*)$")


def normalise_endpoint(endpoint: str) -> tuple[str, str | None]:
    """The OpenAI path of an endpoint (no /v1 or Azure prefix) and the Azure deployment."""
    if endpoint.startswith("/v1/"):
        endpoint = endpoint[3:]
    elif endpoint.startswith("/openai/v1/"):
        endpoint = endpoint[10:]
    match = _AZURE_DEPLOYMENT.match(endpoint)
    if match:
        return match.group(2), match.group(1)
    return endpoint, None


def is_llm_call(method: str, endpoint: str) -> bool:
    """Generation calls count as LLM requests; model lists, files and lookups do not."""
    if method != "POST":
        return False
    if endpoint.startswith(("/responses", "/chat/completions", "/completions")):
        return endpoint in ("/responses", "/chat/completions", "/completions")
    return endpoint.startswith(LLM_PREFIXES)


def load_request(body: bytes, out: Analysis) -> dict[str, Any] | None:
    """The JSON object a request body holds (kept as ``out.request_doc``), if it is one."""
    if not body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    out.request_doc = doc
    return doc if isinstance(doc, dict) else None


def analyse_request(method: str, endpoint: str, body: bytes, ctype: str, out: Analysis) -> None:
    endpoint, deployment = normalise_endpoint(endpoint)
    out.kind = "llm" if is_llm_call(method, endpoint) else "other"
    out.model = deployment
    if not body:
        return
    if body[:1] in (b"{", b" ", b"\n", b"\t", b"\r"):
        doc = load_request(body, out)
        if doc is not None:
            model = doc.get("model")
            out.model = model if isinstance(model, str) else out.model
            out.stream = doc.get("stream") is True
            user = doc.get("user")
            out.user = user if isinstance(user, str) and user else None
        return
    if "multipart/form-data" in ctype:
        match = _MULTIPART_MODEL.search(body)
        if match:
            out.model = match.group(1).decode("utf-8", "replace")


def apply_usage(usage: Any, out: Analysis) -> None:
    """Read either usage shape: prompt/completion (chat, embeddings) or input/output."""
    if not isinstance(usage, dict):
        return
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    total = usage.get("total_tokens")
    if isinstance(prompt, int):
        out.prompt_tokens = prompt
    if isinstance(completion, int):
        out.completion_tokens = completion
    elif isinstance(prompt, int) and isinstance(total, int):
        out.completion_tokens = max(total - prompt, 0)
    if isinstance(total, int):
        out.total_tokens = total
    elif out.prompt_tokens is not None and out.completion_tokens is not None:
        out.total_tokens = out.prompt_tokens + out.completion_tokens
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        out.cached_tokens = details["cached_tokens"]
    details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        out.reasoning_tokens = details["reasoning_tokens"]


def analyse_response(
    endpoint: str, body: bytes, ctype: str, marks: list[tuple[int, float]], out: Analysis
) -> None:
    """Fill usage, response model, timings and the reassembled body from the response."""
    endpoint, _ = normalise_endpoint(endpoint)
    if ctype.startswith("text/event-stream"):
        out.stream = True
        if endpoint.startswith("/responses"):
            _responses_stream(body, marks, out)
        else:
            _chat_stream(body, marks, out)
        return
    if not body or "json" not in ctype:
        out.response_body = body
        return
    out.response_body = body
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if isinstance(doc, dict):
        model = doc.get("model")
        out.response_model = model if isinstance(model, str) else None
        apply_usage(doc.get("usage"), out)
        if "timings" in doc:
            apply_timings(doc["timings"], out)


def apply_timings(timings: Any, out: Analysis) -> None:
    """llama.cpp's server reports its own speeds in a ``timings`` object."""
    if not isinstance(timings, dict):
        return
    predicted = timings.get("predicted_per_second")
    prompt = timings.get("prompt_per_second")
    if isinstance(predicted, int | float) and predicted > 0:
        out.server_tokens_per_s = float(predicted)
    if isinstance(prompt, int | float) and prompt > 0:
        out.prompt_tokens_per_s = float(prompt)


class Clock:
    """Maps a byte offset of the response to the time it arrived."""

    def __init__(self, marks: list[tuple[int, float]]) -> None:
        self.ends = [m[0] for m in marks]
        self.times = [m[1] for m in marks]

    def at(self, offset: int) -> float | None:
        if not self.ends:
            return None
        i = bisect.bisect_left(self.ends, offset)
        return self.times[min(i, len(self.times) - 1)]


def _chat_stream(body: bytes, marks: list[tuple[int, float]], out: Analysis) -> None:
    clock = Clock(marks)
    first: float | None = None
    last: float | None = None
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    is_text = False
    events = iter_data(body) if b"\r" not in body else _slow_data(body)
    for data, end in events:
        if not data or data == b"[DONE]":
            continue
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        if "error" in doc:
            err = doc["error"]
            out.stream_error = (
                str(err.get("message")) if isinstance(err, dict) else str(err)
            ) or "error event in stream"
            continue
        for name in ("id", "created", "model", "system_fingerprint", "service_tier", "object"):
            if name in doc and name not in head:
                head[name] = doc[name]
        if doc.get("usage"):
            apply_usage(doc["usage"], out)
        if "timings" in doc:
            apply_timings(doc["timings"], out)
        produced = False
        for choice in doc.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            produced |= _merge_choice(choices, choice)
            is_text = is_text or "text" in choice
        if produced:
            when = clock.at(end)
            if first is None:
                first = when
            last = when
    out.response_model = head.get("model") if isinstance(head.get("model"), str) else None
    out.ttft_ms = first
    if first is not None and last is not None:
        out.generation_ms = last - first
    out.response_body = orjson.dumps(_assemble_chat(head, choices, is_text, out))


def _slow_data(body: bytes) -> Iterator[tuple[bytes, int]]:
    for event in iter_events(body):
        yield event.data.encode(), event.end


def _merge_choice(choices: dict[int, dict[str, Any]], choice: dict[str, Any]) -> bool:
    index = choice.get("index", 0)
    acc = choices.setdefault(index if isinstance(index, int) else 0, {"message": {}})
    produced = False
    if choice.get("finish_reason"):
        acc["finish_reason"] = choice["finish_reason"]
    if isinstance(choice.get("text"), str):
        acc["text"] = acc.get("text", "") + choice["text"]
        produced = produced or bool(choice["text"])
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        acc.setdefault("logprobs", {"content": []})["content"].extend(logprobs["content"])
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return produced
    message = acc["message"]
    for name, value in delta.items():
        if name == "tool_calls" and isinstance(value, list):
            calls = message.setdefault("tool_calls", {})
            for call in value:
                if isinstance(call, dict):
                    _merge_tool_call(calls, call)
                    produced = True
        elif name == "function_call" and isinstance(value, dict):
            legacy = message.setdefault("function_call", {"name": "", "arguments": ""})
            for part in ("name", "arguments"):
                if isinstance(value.get(part), str):
                    legacy[part] += value[part]
            produced = True
        elif name == "role" and isinstance(value, str):
            message["role"] = value
        elif isinstance(value, str):
            message[name] = (message.get(name) or "") + value
            produced = produced or (bool(value) and name != "role")
        elif value is not None and name not in message:
            message[name] = value
    return produced


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    index = delta.get("index", len(calls))
    call = calls.setdefault(index, {"function": {"arguments": ""}})
    for name in ("id", "type"):
        if delta.get(name):
            call[name] = delta[name]
    fn = delta.get("function")
    if isinstance(fn, dict):
        if fn.get("name"):
            call["function"]["name"] = call["function"].get("name", "") + fn["name"]
        if isinstance(fn.get("arguments"), str):
            call["function"]["arguments"] += fn["arguments"]


def _assemble_chat(
    head: dict[str, Any], choices: dict[int, dict[str, Any]], is_text: bool, out: Analysis
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": head.get("id"),
        "object": "text_completion" if is_text else "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
    }
    for name in ("system_fingerprint", "service_tier"):
        if name in head:
            result[name] = head[name]
    assembled = []
    for index in sorted(choices):
        acc = choices[index]
        item: dict[str, Any] = {"index": index}
        if is_text:
            item["text"] = acc.get("text", "")
        else:
            message = dict(acc["message"])
            message.setdefault("role", "assistant")
            message.setdefault("content", None if "tool_calls" in message else "")
            if "tool_calls" in message:
                message["tool_calls"] = [
                    message["tool_calls"][i] for i in sorted(message["tool_calls"])
                ]
            item["message"] = message
        item["logprobs"] = acc.get("logprobs")
        item["finish_reason"] = acc.get("finish_reason")
        assembled.append(item)
    result["choices"] = assembled
    if out.prompt_tokens is not None or out.completion_tokens is not None:
        result["usage"] = {
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "total_tokens": out.total_tokens,
        }
    return result


def _responses_stream(body: bytes, marks: list[tuple[int, float]], out: Analysis) -> None:
    clock = Clock(marks)
    first: float | None = None
    last: float | None = None
    final: dict[str, Any] | None = None
    started: dict[str, Any] | None = None
    text: list[str] = []
    for event in iter_events(body):
        try:
            doc = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        kind = doc.get("type") or event.event or ""
        if kind.endswith(".delta"):
            when = clock.at(event.end)
            first = when if first is None else first
            last = when
            if kind == "response.output_text.delta" and isinstance(doc.get("delta"), str):
                text.append(doc["delta"])
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            final = doc.get("response") if isinstance(doc.get("response"), dict) else None
            if kind == "response.failed" and final is not None:
                err = final.get("error")
                out.stream_error = str(err.get("message")) if isinstance(err, dict) else "failed"
        elif kind == "response.created" and isinstance(doc.get("response"), dict):
            started = doc["response"]
        elif kind == "error":
            out.stream_error = str(doc.get("message") or doc.get("error") or "error event")
    out.ttft_ms = first
    if first is not None and last is not None:
        out.generation_ms = last - first
    if final is None:
        final = dict(started or {})
        final["output_text"] = "".join(text)
        final["status"] = "incomplete"
    out.response_model = final.get("model") if isinstance(final.get("model"), str) else None
    apply_usage(final.get("usage"), out)
    out.response_body = orjson.dumps(final)
