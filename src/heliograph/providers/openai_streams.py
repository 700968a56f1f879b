"""OpenAI streams reassembled into the response a non-stream call would have returned.

Chat Completions and legacy Completions streams (``chat_stream``) and Responses API streams
(``responses_stream``), with the time of the first and last output events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from heliograph.providers.analysis import Analysis, Clock, apply_timings, apply_usage
from heliograph.providers.openai_stream_parse import DONE, HEAD_FIELDS, data_array, uniform_events
from heliograph.providers.sse import iter_data, iter_events

_HEAD = HEAD_FIELDS


class _Choice:
    """One choice being reassembled; string deltas are collected and joined once."""

    __slots__ = ("finish_reason", "legacy", "logprobs", "message", "parts", "text", "tool_calls")

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self.parts: dict[str, list[str]] = {}
        self.text: list[str] | None = None
        self.finish_reason: Any = None
        self.logprobs: list[Any] | None = None
        self.tool_calls: dict[int, dict[str, Any]] | None = None
        self.legacy: dict[str, str] | None = None


def chat_stream(body: bytes, marks: list[tuple[int, float]], out: Analysis) -> None:
    seen: list[dict[str, Any]] = []  # the events that are not errors, for the head fields
    choices: dict[int, _Choice] = {}
    is_text = False
    first: int | None = None  # where the first and last events with output end
    last: int | None = None
    parsed = _data_array(body)
    docs, shared = parsed if parsed is not None else (None, None)
    shared_seen = False  # shared: the head of every event after the first, if left out
    events = enumerate(docs) if docs is not None else _parsed_events(body)
    for ref, doc in events:
        if type(doc) is not dict:
            continue
        if "error" in doc:
            err = doc["error"]
            out.stream_error = (
                str(err.get("message")) if isinstance(err, dict) else str(err)
            ) or "error event in stream"
            continue
        if shared is not None and ref:  # its head fields were left out: they are shared's
            shared_seen = True
        else:
            seen.append(doc)
        usage = doc.get("usage")
        if usage:
            apply_usage(usage, out)
        if "timings" in doc:
            apply_timings(doc["timings"], out)
        produced = False
        for choice in doc.get("choices") or ():
            if type(choice) is not dict:
                continue
            # Most events: one piece of content for a choice already begun (inlined).
            delta = choice.get("delta")
            if (
                type(delta) is dict
                and len(delta) == 1
                and type(content := delta.get("content")) is str
                and not choice.get("finish_reason")
                and not choice.get("logprobs")
                and "text" not in choice
            ):
                index = choice.get("index", 0)
                acc = choices.get(index if type(index) is int else 0)
                parts = acc.parts.get("content") if acc is not None else None
                if parts is not None:
                    parts.append(content)
                    produced = produced or bool(content)
                    continue
            if _merge_choice(choices, choice):
                produced = True
            if "text" in choice:
                is_text = True
        if produced:
            if first is None:
                first = ref
            last = ref
    if shared is not None and shared_seen:  # after the first event, the only other one
        seen.append(shared)
    head = _head(seen)
    out.response_model = head.get("model") if isinstance(head.get("model"), str) else None
    if first is not None and last is not None:
        if docs is not None:  # refs are event numbers: find where those events end
            count = len(docs) + body.endswith(DONE)  # every event ends in a blank line
            first, last = _event_end(body, first, count), _event_end(body, last, count)
        clock = Clock(marks)
        out.ttft_ms = clock.at(first)
        end_ms = clock.at(last)
        if out.ttft_ms is not None and end_ms is not None:
            out.generation_ms = end_ms - out.ttft_ms
    out.response_body = orjson.dumps(_assemble_chat(head, choices, is_text, out))


def _head(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Each head field (id, model, ...) from the first event that fills it.

    Empty values are placeholders, not answers: Azure's first event carries the prompt
    filter results with ``"id": ""``, ``"model": ""`` and ``"created": 0``. A field that is
    empty in every event keeps its first value.
    """
    head: dict[str, Any] = {}
    for name in _HEAD:
        first: Any = _ABSENT
        for doc in events:
            if name in doc:
                value = doc[name]
                if value:
                    head[name] = value
                    break
                if first is _ABSENT:
                    first = value
        else:
            if first is not _ABSENT:
                head[name] = first
    return head


_ABSENT = object()


def _data_array(body: bytes) -> tuple[list[Any], dict[str, Any] | None] | None:
    """Every event of a well-formed OpenAI stream, parsed in one go, and the head fields
    left out of every event after the first (None if not); None if it is not such a stream
    (then the general path parses event by event)."""
    uniform = uniform_events(body)
    if uniform is not None:
        return uniform
    docs = data_array(body)
    return None if docs is None else (docs, None)


def _event_end(body: bytes, index: int, count: int) -> int:
    """The offset just past event ``index`` of ``count`` events that end in blank lines.

    Walks from whichever end is nearer: the events asked for are the first and the last
    with output, near the start and near the end of the stream.
    """
    if index < count - index:
        pos = -2
        for _ in range(index + 1):
            pos = body.find(b"\n\n", pos + 2)
        return pos + 2
    pos = len(body)
    for _ in range(count - index):
        pos = body.rfind(b"\n\n", 0, pos)
    return pos + 2


def _parsed_events(body: bytes) -> Iterator[tuple[int, Any]]:
    """(end offset, parsed data) of each event with JSON data, in any SSE framing."""
    if b"\r" in body:  # CR framing: the full parser
        events: Iterator[tuple[bytes, int]] = ((e.data.encode(), e.end) for e in iter_events(body))
    else:
        events = iter_data(body)
    for data, end in events:
        if not data or data == b"[DONE]":
            continue
        try:
            yield end, orjson.loads(data)
        except orjson.JSONDecodeError:
            continue


def _merge_choice(choices: dict[int, _Choice], choice: dict[str, Any]) -> bool:
    index = choice.get("index", 0)
    key = index if type(index) is int else 0
    acc = choices.get(key)
    if acc is None:
        acc = choices[key] = _Choice()
    delta = choice.get("delta")
    if (
        type(delta) is dict
        and len(delta) == 1
        and not choice.get("finish_reason")
        and not choice.get("logprobs")
        and "text" not in choice
    ):
        # Most events of a stream: one piece of content and nothing else.
        content = delta.get("content")
        if type(content) is str:
            parts = acc.parts.get("content")
            if parts is None:
                parts = acc.parts["content"] = []
                acc.message.setdefault("content", None)
            parts.append(content)
            return bool(content)
    produced = False
    finish = choice.get("finish_reason")
    if finish:
        acc.finish_reason = finish
    text = choice.get("text")
    if type(text) is str:
        if acc.text is None:
            acc.text = []
        acc.text.append(text)
        produced = bool(text)
    logprobs = choice.get("logprobs")
    if logprobs and isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        if acc.logprobs is None:
            acc.logprobs = []
        acc.logprobs.extend(logprobs["content"])
    if type(delta) is not dict:
        return produced
    message = acc.message
    for name, value in delta.items():
        if type(value) is str:
            if name == "role":
                message["role"] = value
                continue
            parts = acc.parts.get(name)
            if parts is None:
                parts = acc.parts[name] = []
                message.setdefault(name, None)  # keeps the field order of the deltas
            parts.append(value)
            if value:
                produced = True
        elif name == "tool_calls" and isinstance(value, list):
            if acc.tool_calls is None:
                acc.tool_calls = {}
                message.setdefault("tool_calls", None)
            for call in value:
                if isinstance(call, dict):
                    _merge_tool_call(acc.tool_calls, call)
                    produced = True
        elif name == "function_call" and isinstance(value, dict):
            if acc.legacy is None:
                acc.legacy = {"name": "", "arguments": ""}
                message.setdefault("function_call", None)
            for part in ("name", "arguments"):
                if isinstance(value.get(part), str):
                    acc.legacy[part] += value[part]
            produced = True
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
    head: dict[str, Any], choices: dict[int, _Choice], is_text: bool, out: Analysis
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
            item["text"] = "".join(acc.text or ())
        else:
            message = dict(acc.message)
            for name, parts in acc.parts.items():
                message[name] = "".join(parts)
            if acc.tool_calls is not None:
                message["tool_calls"] = [acc.tool_calls[i] for i in sorted(acc.tool_calls)]
            if acc.legacy is not None:
                message["function_call"] = acc.legacy
            message.setdefault("role", "assistant")
            if message.get("content") is None:
                message["content"] = None if "tool_calls" in message else ""
            item["message"] = message
        item["logprobs"] = {"content": acc.logprobs} if acc.logprobs is not None else None
        item["finish_reason"] = acc.finish_reason
        assembled.append(item)
    result["choices"] = assembled
    if out.prompt_tokens is not None or out.completion_tokens is not None:
        result["usage"] = {
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "total_tokens": out.total_tokens,
        }
    return result


def responses_stream(body: bytes, marks: list[tuple[int, float]], out: Analysis) -> None:
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
