"""One module per wire protocol; each has ``analyse_request`` and ``analyse_response``."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from heliograph.providers import anthropic, ollama, openai
from heliograph.providers.analysis import Analysis

PROTOCOLS = ("openai", "anthropic", "ollama")


class Analyser(Protocol):
    def analyse_request(
        self, method: str, endpoint: str, body: bytes, ctype: str, out: Analysis
    ) -> None: ...

    def analyse_response(
        self, endpoint: str, body: bytes, ctype: str, marks: list[Any], out: Analysis
    ) -> None: ...


def analyser(protocol: str) -> Analyser:
    """The analysis module for a protocol (OpenAI's for anything unknown)."""
    if protocol == "anthropic":
        return anthropic
    return ollama if protocol == "ollama" else openai


def output_text(doc: Any) -> str:
    """The generated text of a (reassembled) response in any protocol, for token estimates."""
    if not isinstance(doc, dict):
        return ""
    parts: list[str] = []
    for choice in doc.get("choices") or ():  # OpenAI chat and completions
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or {}
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
        if isinstance(message, dict):
            for name in ("content", "reasoning_content", "reasoning", "refusal"):
                if isinstance(message.get(name), str):
                    parts.append(message[name])
            for call in message.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    parts += [str(fn.get("name") or ""), str(fn.get("arguments") or "")]
    if isinstance(doc.get("output_text"), str):  # Responses API (reassembled)
        parts.append(doc["output_text"])
    elif isinstance(doc.get("output"), list):
        for item in doc["output"]:
            for content in (item.get("content") or ()) if isinstance(item, dict) else ():
                if isinstance(content, dict) and isinstance(content.get("text"), str):
                    parts.append(content["text"])
    if doc.get("type") == "message" and isinstance(doc.get("content"), list):  # Anthropic
        for block in doc["content"]:
            if isinstance(block, dict):
                for name in ("text", "thinking"):
                    if isinstance(block.get(name), str):
                        parts.append(block[name])
                if block.get("type") == "tool_use":
                    parts.append(orjson.dumps(block.get("input")).decode())
    message = doc.get("message")  # Ollama chat
    if isinstance(message, dict):
        for name in ("content", "thinking"):
            if isinstance(message.get(name), str):
                parts.append(message[name])
    if isinstance(doc.get("response"), str):  # Ollama generate
        parts.append(doc["response"])
    return "".join(parts)


def error_message(body: bytes) -> str | None:
    """The message of an error response in any protocol's shape (or its text)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:500].decode("utf-8", "replace").strip()
        return text or None
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(doc.get("message"), str):
            return str(doc["message"])
    return None
