"""The prompt and the answer of an ingested LLM span, as OpenAI chat messages.

Instrumentations carry content in several shapes: the current semantic conventions'
``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON, messages made of parts) and
``gen_ai.system_instructions``; OpenLLMetry's indexed ``gen_ai.prompt.N.role`` /
``gen_ai.completion.N.content``; OpenLIT's ``gen_ai.prompt`` / ``gen_ai.completion`` (as
attributes or as ``gen_ai.content.*`` events); and the older per-message span events
(``gen_ai.user.message``, ``gen_ai.choice``, ...). Records store bodies in the OpenAI chat
shape because the dashboard, search and replay already read it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from heliograph.telemetry.otlp_decode import EventData

_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
MAX_INDEX = 1000
ROLE_EVENTS: Mapping[str, str] = MappingProxyType(
    {
        "gen_ai.system.message": "system",
        "gen_ai.user.message": "user",
        "gen_ai.assistant.message": "assistant",
        "gen_ai.tool.message": "tool",
    }
)


def _json(value: Any) -> Any:
    """A JSON-encoded attribute decoded (instrumentations put structures in strings)."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _from_parts(message: dict[str, Any]) -> dict[str, Any]:
    """A semantic-conventions message (role, parts) as an OpenAI chat message."""
    role = str(message.get("role") or "user")
    parts = message.get("parts")
    if not isinstance(parts, list):
        return {"role": role, "content": _text(message.get("content", ""))}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    out: dict[str, Any] = {"role": role}
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "tool_call":
            arguments = part.get("arguments")
            calls.append(
                {
                    "id": str(part.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(part.get("name") or ""),
                        "arguments": _text(arguments if arguments is not None else {}),
                    },
                }
            )
        elif kind == "tool_call_response":
            out["role"] = "tool"
            out["tool_call_id"] = str(part.get("id") or "")
            texts.append(_text(part.get("response", part.get("result", ""))))
        elif "content" in part:
            texts.append(_text(part["content"]))
    out["content"] = "\n".join(texts) if texts or not calls else None
    if calls:
        out["tool_calls"] = calls
    return out


def _semconv(value: Any) -> list[dict[str, Any]]:
    doc = _json(value)
    if not isinstance(doc, list):
        return []
    return [_from_parts(m) for m in doc if isinstance(m, dict)]


def _indexed(attributes: dict[str, Any], side: str) -> list[dict[str, Any]]:
    """OpenLLMetry's gen_ai.prompt.0.role / .content (and the completion side)."""
    found: dict[int, dict[str, Any]] = {}
    for name, value in attributes.items():
        match = _INDEXED.match(name)
        if match is None or match.group(1) != side or int(match.group(2)) > MAX_INDEX:
            continue
        found.setdefault(int(match.group(2)), {})[match.group(3)] = value
    out = []
    for _, fields in sorted(found.items()):
        default = "assistant" if side == "completion" else "user"
        message: dict[str, Any] = {"role": str(fields.get("role") or default)}
        content = fields.get("content")
        message["content"] = _text(content) if content is not None else None
        if fields.get("finish_reason"):
            message["finish_reason"] = str(fields["finish_reason"])
        out.append(message)
    return out


def _openlit(value: Any, role: str) -> list[dict[str, Any]]:
    """OpenLIT's gen_ai.prompt / gen_ai.completion: text, or a JSON list of messages."""
    doc = _json(value)
    if isinstance(doc, list) and all(isinstance(m, dict) for m in doc):
        return [
            _from_parts(m) if "parts" in m else {**m, "role": str(m.get("role") or role)}
            for m in doc
        ]
    return [{"role": role, "content": _text(doc)}] if doc not in (None, "") else []


def _event_content(event: EventData) -> Any:
    attrs = event["a"]
    for name in ("content", "message.content", "body.content", "gen_ai.event.content"):
        if name in attrs:
            return attrs[name]
    return None


def _system(value: Any) -> str:
    """``gen_ai.system_instructions``: text parts (JSON), or plain text."""
    doc = _json(value)
    if isinstance(doc, list):
        return "\n".join(_text(p.get("content", "")) for p in doc if isinstance(p, dict))
    return doc if isinstance(doc, str) else ""


def input_messages(attributes: dict[str, Any], events: list[EventData]) -> list[dict[str, Any]]:
    """The prompt, from whichever shape the span carries it in."""
    system = _system(attributes.get("gen_ai.system_instructions"))
    head = [{"role": "system", "content": system}] if system else []
    found = _semconv(attributes.get("gen_ai.input.messages")) or _indexed(attributes, "prompt")
    if not found and "gen_ai.prompt" in attributes:
        found = _openlit(attributes["gen_ai.prompt"], "user")
    if not found:
        for event in events:
            if event["n"] in ROLE_EVENTS:
                content = _event_content(event)
                message = {"role": ROLE_EVENTS[event["n"]], "content": _text(content or "")}
                found.append(message)
            elif event["n"] == "gen_ai.content.prompt" and "gen_ai.prompt" in event["a"]:
                found += _openlit(event["a"]["gen_ai.prompt"], "user")
    return head + found


def output_messages(attributes: dict[str, Any], events: list[EventData]) -> list[dict[str, Any]]:
    """The answer's messages (each may carry its finish_reason)."""
    doc = _json(attributes.get("gen_ai.output.messages"))
    if isinstance(doc, list):
        out = []
        for item in doc:
            if isinstance(item, dict):
                message = _from_parts({**item, "role": item.get("role") or "assistant"})
                if item.get("finish_reason"):
                    message["finish_reason"] = str(item["finish_reason"])
                out.append(message)
        if out:
            return out
    found = _indexed(attributes, "completion")
    if not found and "gen_ai.completion" in attributes:
        found = _openlit(attributes["gen_ai.completion"], "assistant")
    if not found:
        for event in events:
            if event["n"] == "gen_ai.choice":
                content = _event_content(event)
                message = {"role": "assistant", "content": _text(content or "")}
                reason = event["a"].get("finish_reason")
                if reason:
                    message["finish_reason"] = str(reason)
                found.append(message)
            elif event["n"] == "gen_ai.content.completion" and "gen_ai.completion" in event["a"]:
                found += _openlit(event["a"]["gen_ai.completion"], "assistant")
    return found


def request_body(model: str | None, messages: list[dict[str, Any]]) -> bytes | None:
    """The prompt as an OpenAI chat request body, or None when the span carried none."""
    if not messages:
        return None
    return orjson.dumps({"model": model, "messages": messages})


def response_body(
    model: str | None, messages: list[dict[str, Any]], usage: dict[str, int]
) -> bytes | None:
    """The answer as an OpenAI chat completion body, or None when the span carried none."""
    if not messages:
        return None
    choices = []
    for index, message in enumerate(messages):
        reason = message.pop("finish_reason", None)
        choices.append({"index": index, "message": message, "finish_reason": reason})
    doc: dict[str, Any] = {"object": "chat.completion", "model": model, "choices": choices}
    if usage:
        doc["usage"] = usage
    return orjson.dumps(doc)
