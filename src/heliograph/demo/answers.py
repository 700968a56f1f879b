"""What the model said, read back as a client does, so the next turn of a chat can carry it.

Demo conversations grow: each request carries the previous turns, including the assistant's
answers and tool calls exactly as they came back. This reads the assistant's message out of
a response in each protocol, whole or streamed.
"""

from __future__ import annotations

from typing import Any

import orjson


def _events(body: bytes) -> list[dict[str, Any]]:
    """The JSON objects of an SSE stream (``data:`` lines) or an NDJSON stream."""
    payloads = []
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith(b"data:"):
            line = line[5:].strip()
        if line.startswith(b"{"):
            payloads.append(line)
    try:  # all at once: one parse instead of one per token
        docs = orjson.loads(b"[" + b",".join(payloads) + b"]")
    except orjson.JSONDecodeError:
        docs = []
        for line in payloads:
            try:
                docs.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return [doc for doc in docs if isinstance(doc, dict)]


def assistant_message(protocol: str, status: int, body: bytes) -> dict[str, Any] | None:
    """The assistant's message in a response, as the next request carries it; None when the
    request failed."""
    if not 200 <= status < 400:  # an error, or no answer at all (0: the connection failed)
        return None
    try:
        whole = orjson.loads(body)
    except orjson.JSONDecodeError:
        whole = None
    if protocol == "anthropic":
        return _anthropic(whole, body)
    if protocol == "ollama":
        return _ollama(whole, body)
    return _openai(whole, body)


def _openai(whole: Any, body: bytes) -> dict[str, Any] | None:
    if isinstance(whole, dict):
        choices = whole.get("choices") or [{}]
        message = dict(choices[0].get("message") or {})
        message.pop("refusal", None)
        return message or None
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for event in _events(body):
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text.append(delta["content"])
            for part in delta.get("tool_calls") or []:
                call = calls.setdefault(
                    part.get("index", 0),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = part.get("id") or call["id"]
                function = part.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
    if calls:
        return {"role": "assistant", "content": None, "tool_calls": list(calls.values())}
    return {"role": "assistant", "content": "".join(text)}


def _anthropic(whole: Any, body: bytes) -> dict[str, Any] | None:
    if isinstance(whole, dict):
        blocks = whole.get("content") or []
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict))
        return {"role": "assistant", "content": text}
    pieces = [
        (e.get("delta") or {}).get("text", "")
        for e in _events(body)
        if e.get("type") == "content_block_delta"
    ]
    return {"role": "assistant", "content": "".join(pieces)}


def _ollama(whole: Any, body: bytes) -> dict[str, Any] | None:
    if isinstance(whole, dict):
        message = whole.get("message") or {}
        return {"role": "assistant", "content": message.get("content", "")}
    pieces = [(e.get("message") or {}).get("content", "") for e in _events(body)]
    return {"role": "assistant", "content": "".join(pieces)}
