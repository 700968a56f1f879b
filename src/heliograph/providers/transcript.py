"""A stored prompt and output as plain text, for exports a person reads in a spreadsheet.

The raw bodies are exact but are JSON in one of several wire formats (OpenAI chat,
completions and Responses, Anthropic, Ollama); these two functions flatten any of them to
text: the prompt as ``role: text`` blocks in order (system prompt first), the output as the
generated text. Tool calls are written ``[tool call name: arguments]`` and images
``[image]``, so nothing a model saw or said silently disappears. The dashboard's request page
(``web.chat``) keeps the richer form with thumbnails and placeholders.

``answer`` is the evaluators' view of the same output: the answer's text alone (no reasoning,
no tool-call markers) and the tool calls as data, their arguments parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

SEPARATOR = "\n\n"
TEXT_KINDS = ("text", "input_text", "output_text")


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def _tool_call(name: Any, arguments: Any) -> str:
    return f"[tool call {name or 'tool'}: {_json(arguments)}]"


def _content(content: Any) -> str:
    """A message's content: a string, a list of typed parts (any protocol) or one part."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return _json(content)
    pieces: list[str] = []
    for item in content:
        if isinstance(item, str):
            pieces.append(item)
        elif isinstance(item, dict):
            pieces.append(_part(item))
    return "\n".join(p for p in pieces if p)


def _part(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind in TEXT_KINDS or (kind is None and "text" in item):
        return str(item.get("text") or "")
    if kind in ("image_url", "input_image", "image"):
        return "[image]"
    if kind == "tool_use":
        return _tool_call(item.get("name"), item.get("input"))
    if kind == "tool_result":
        return _content(item.get("content"))
    if kind in ("thinking", "reasoning"):
        return str(item.get("thinking") or item.get("text") or "")
    if kind == "refusal":
        return str(item.get("refusal") or "")
    return f"[{kind or 'part'}]"


def _message(msg: dict[str, Any]) -> str:
    """A chat message's text, tool calls after it (OpenAI, Anthropic and Ollama shapes)."""
    pieces = [_content(msg.get("content"))]
    if isinstance(msg.get("refusal"), str):
        pieces.append(msg["refusal"])
    pieces += ["[image]" for _ in msg.get("images") or ()]  # Ollama
    calls = msg.get("tool_calls")
    if isinstance(msg.get("function_call"), dict):
        calls = [msg["function_call"]]
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            fn = call["function"] if isinstance(call.get("function"), dict) else call
            pieces.append(_tool_call(fn.get("name"), fn.get("arguments")))
    return "\n".join(p for p in pieces if p)


def _item(item: Any) -> tuple[str, str] | None:
    """A Responses API input or output item as (role, text)."""
    if isinstance(item, str):
        return "user", item
    if not isinstance(item, dict):
        return None
    kind = item.get("type")
    if kind == "function_call":
        return "assistant", _tool_call(item.get("name"), item.get("arguments"))
    if kind == "function_call_output":
        return "tool", _json(item.get("output"))
    if kind == "reasoning":
        summary = item.get("summary") or []
        text = " ".join(str(s.get("text") or "") for s in summary if isinstance(s, dict))
        return ("assistant", text) if text else None
    if kind in (None, "message"):
        return str(item.get("role") or "user"), _message(item)
    return "assistant", f"[{kind}]"


def _turns(body: dict[str, Any]) -> list[tuple[str, str]]:
    turns: list[tuple[str, str]] = []
    for key in ("system", "instructions"):
        if body.get(key):
            turns.append(("system", _content(body[key])))
    if isinstance(body.get("messages"), list):
        for msg in body["messages"]:
            if isinstance(msg, dict):
                turns.append((str(msg.get("role") or "user"), _message(msg)))
    elif "input" in body:
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if items and all(isinstance(i, int | float) for i in items):
            return [*turns, ("user", f"[{len(items)} token ids]")]
        turns += [t for t in map(_item, items) if t is not None]
    elif "prompt" in body:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        turns += [("user", _json(p)) for p in prompts]
    return turns


def prompt_turns(body: Any) -> list[tuple[str, str]]:
    """The prompt as (role, text) turns in order, system prompt first ([] if there is none)."""
    if isinstance(body, str):
        return [("user", body)]
    return _turns(body) if isinstance(body, dict) else []


def prompt_text(body: Any) -> str:
    """The prompt as ``role: text`` blocks separated by a blank line ('' if there is none)."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    return SEPARATOR.join(f"{role}: {text}" for role, text in _turns(body) if text)


def output_text(body: Any) -> str:
    """The generated text (and tool calls), or ``error: message`` for a failed request."""
    if body is None:
        return ""
    if not isinstance(body, dict):
        return body if isinstance(body, str) else ""
    error = body.get("error")
    if error:
        return "error: " + str(error.get("message") if isinstance(error, dict) else error)
    pieces: list[str] = []
    for choice in body.get("choices") or ():  # OpenAI chat and completions
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            pieces.append(_message(choice["message"]))
        elif isinstance(choice, dict) and isinstance(choice.get("text"), str):
            pieces.append(choice["text"])
    if isinstance(body.get("output"), list):  # Responses
        pieces += [t[1] for t in map(_item, body["output"]) if t is not None]
    elif isinstance(body.get("output_text"), str):
        pieces.append(body["output_text"])
    if isinstance(body.get("content"), list):  # Anthropic
        pieces.append(_content(body["content"]))
    if isinstance(body.get("message"), dict):  # Ollama chat
        pieces.append(_message(body["message"]))
    if isinstance(body.get("response"), str):  # Ollama generate
        pieces.append(body["response"])
    return SEPARATOR.join(p for p in pieces if p)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call a model made: its name and arguments (parsed when sent as JSON text)."""

    name: str
    arguments: Any


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _call(fn: dict[str, Any], arguments: str = "arguments") -> ToolCall:
    return ToolCall(str(fn.get("name") or ""), _arguments(fn.get(arguments)))


def _answer_text(content: Any) -> str:
    """A content's text parts only: reasoning, tool calls and media are not the answer."""
    if isinstance(content, list | dict):
        items = content if isinstance(content, list) else [content]
        content = [
            item
            for item in items
            if isinstance(item, str)
            or (isinstance(item, dict) and item.get("type") in (*TEXT_KINDS, "refusal"))
            or (isinstance(item, dict) and "type" not in item and "text" in item)
        ]
    return _content(content)


def _answer_message(msg: dict[str, Any], texts: list[str], calls: list[ToolCall]) -> None:
    """An OpenAI or Ollama chat message (or a Responses message item)."""
    texts.append(_answer_text(msg.get("content")))
    if isinstance(msg.get("refusal"), str):
        texts.append(msg["refusal"])
    found = msg.get("tool_calls")
    if isinstance(msg.get("function_call"), dict):
        found = [msg["function_call"]]
    for call in found if isinstance(found, list) else ():
        if isinstance(call, dict):
            calls.append(
                _call(call["function"] if isinstance(call.get("function"), dict) else call)
            )


def answer(body: Any) -> tuple[str, list[ToolCall]]:
    """The answer's text and its tool calls, for any stored wire format ('' and [] for an
    error body); reasoning and thinking are left out."""
    if isinstance(body, str):
        return body, []
    if not isinstance(body, dict) or body.get("error"):
        return "", []
    texts: list[str] = []
    calls: list[ToolCall] = []
    for choice in body.get("choices") or ():  # OpenAI chat and completions
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            _answer_message(choice["message"], texts, calls)
        elif isinstance(choice, dict) and isinstance(choice.get("text"), str):
            texts.append(choice["text"])
    if isinstance(body.get("output"), list):  # Responses
        for item in body["output"]:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "function_call":
                calls.append(_call(item))
            elif kind == "message":
                _answer_message(item, texts, calls)
    elif isinstance(body.get("output_text"), str):
        texts.append(body["output_text"])
    if isinstance(body.get("content"), list):  # Anthropic
        texts.append(_answer_text(body["content"]))
        for block in body["content"]:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                calls.append(_call(block, "input"))
    if isinstance(body.get("message"), dict):  # Ollama chat
        _answer_message(body["message"], texts, calls)
    if isinstance(body.get("response"), str):  # Ollama generate
        texts.append(body["response"])
    return SEPARATOR.join(t for t in texts if t), calls
