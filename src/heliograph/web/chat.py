"""A logged request and response as a conversation: messages with text, images and tool calls.

Understands the OpenAI (chat, completions, Responses), Anthropic and Ollama wire formats as
stored. Images are shown only when the image itself survived storage as a small ``data:`` URL
of a raster type; anything else becomes a placeholder, and remote image URLs are shown as
text, never loaded (a prompt's URL could track whoever opens the page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}$")
_OMITTED = re.compile(r"^data:([\w.+/-]+);base64,\[omitted by Heliograph: (\d+) bytes\]$")
MAX_THUMB_CHARS = 400_000
PREVIEW_CHARS = 140


@dataclass
class Part:
    kind: str  # text, image, placeholder, link, tool_call, tool_result, error
    text: str = ""
    name: str = ""
    src: str = ""


@dataclass
class Message:
    role: str
    parts: list[Part] = field(default_factory=list)
    name: str = ""

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if p.kind in ("text", "tool_result"))


def pretty(value: Any) -> str:
    """JSON as indented text (strings that hold JSON, like tool arguments, are parsed first)."""
    if isinstance(value, str):
        text: str = value
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return str(value)


def image_part(url: Any) -> Part:
    if not isinstance(url, str):
        return Part("placeholder", "image")
    if len(url) <= MAX_THUMB_CHARS and _DATA_IMAGE.match(url):
        return Part("image", "image", src=url)
    omitted = _OMITTED.match(url)
    if omitted:
        return Part(
            "placeholder", f"{omitted.group(1)}, {int(omitted.group(2)):,} bytes (not stored)"
        )
    if url.startswith("data:"):
        return Part("placeholder", f"inline data ({len(url):,} characters, not shown)")
    return Part("link", url)


def _b64_image(media_type: Any, data: Any) -> Part:
    if isinstance(data, str) and isinstance(media_type, str):
        return image_part(f"data:{media_type};base64,{data}")
    return Part("placeholder", "image")


def _parts(content: Any) -> list[Part]:
    """Content as a string, a list of typed parts (any of the three formats) or a dict."""
    if content is None:
        return []
    if isinstance(content, str):
        return [Part("text", content)] if content else []
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return [Part("text", pretty(content))]
    parts: list[Part] = []
    for item in content:
        if isinstance(item, str):
            parts.append(Part("text", item))
            continue
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in ("text", "input_text", "output_text") or (kind is None and "text" in item):
            parts.append(Part("text", str(item.get("text", ""))))
        elif kind in ("image_url", "input_image"):
            url = item.get("image_url")
            parts.append(image_part(url.get("url") if isinstance(url, dict) else url))
        elif kind == "image":
            source = item.get("source") or {}
            if source.get("type") == "base64":
                parts.append(_b64_image(source.get("media_type"), source.get("data")))
            else:
                parts.append(image_part(source.get("url")))
        elif kind == "tool_use":
            parts.append(Part("tool_call", pretty(item.get("input")), name=str(item.get("name"))))
        elif kind == "tool_result":
            inner = _parts(item.get("content"))
            text = "\n".join(p.text for p in inner) or ""
            parts.append(Part("tool_result", text, name=str(item.get("tool_use_id", ""))))
        elif kind in ("thinking", "reasoning"):
            parts.append(Part("text", str(item.get("thinking") or item.get("text") or "")))
        elif kind == "refusal":
            parts.append(Part("error", str(item.get("refusal", ""))))
        else:
            parts.append(Part("placeholder", f"{kind or 'part'}: {pretty(item)[:500]}"))
    return parts


def _tool_calls(calls: Any) -> list[Part]:
    parts = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
        parts.append(
            Part("tool_call", pretty(fn.get("arguments")), name=str(fn.get("name") or "tool"))
        )
    return parts


def _chat_message(msg: Any) -> Message | None:
    if not isinstance(msg, dict):
        return None
    role = str(msg.get("role") or "user")
    parts = _parts(msg.get("content"))
    if msg.get("refusal"):
        parts.append(Part("error", str(msg["refusal"])))
    if isinstance(msg.get("reasoning_content"), str) and msg["reasoning_content"]:
        parts.insert(0, Part("placeholder", "reasoning: " + msg["reasoning_content"]))
    for image in msg.get("images") or []:  # Ollama: bare base64 strings
        parts.append(_b64_image("image/png", image))
    parts += _tool_calls(msg.get("tool_calls"))
    if isinstance(msg.get("function_call"), dict):
        parts += _tool_calls([msg["function_call"]])
    name = str(msg.get("tool_call_id") or msg.get("name") or "")
    return Message(role, parts, name)


def _responses_item(item: Any) -> Message | None:
    if isinstance(item, str):
        return Message("user", [Part("text", item)])
    if not isinstance(item, dict):
        return None
    kind = item.get("type")
    if kind == "function_call":
        return Message("assistant", _tool_calls([item]))
    if kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else pretty(output)
        return Message("tool", [Part("tool_result", text)], str(item.get("call_id", "")))
    if kind == "reasoning":
        summary = item.get("summary") or []
        text = " ".join(s.get("text", "") for s in summary if isinstance(s, dict))
        return Message("assistant", [Part("placeholder", "reasoning: " + text)]) if text else None
    if kind in (None, "message"):
        return _chat_message(item)
    return Message("assistant", [Part("placeholder", f"{kind}: {pretty(item)[:500]}")])


def conversation(body: Any) -> list[Message]:
    """The prompt side: system prompt, messages, prompt or input, in order."""
    if not isinstance(body, dict):
        return [Message("user", [Part("text", body)])] if isinstance(body, str) and body else []
    out: list[Message] = []
    for key in ("system", "instructions"):
        if body.get(key):
            out.append(Message("system", _parts(body[key])))
    if isinstance(body.get("messages"), list):
        out += [m for m in map(_chat_message, body["messages"]) if m is not None]
    elif "input" in body:
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if all(isinstance(i, int | float) for i in items):
            out.append(Message("user", [Part("placeholder", f"{len(items)} token ids")]))
        else:
            out += [m for m in map(_responses_item, items) if m is not None]
    elif "prompt" in body:
        prompt = body["prompt"]
        prompts = prompt if isinstance(prompt, list) else [prompt]
        out += [Message("user", [Part("text", str(p))]) for p in prompts]
    return out


def output(body: Any) -> list[Message]:
    """The response side: the assistant's messages, tool calls, or the error."""
    if body is None:
        return []
    if not isinstance(body, dict):
        return [Message("assistant", [Part("text", str(body))])]
    error = body.get("error")
    if error:
        text = error.get("message") if isinstance(error, dict) else error
        return [Message("error", [Part("error", str(text))])]
    if isinstance(body.get("choices"), list):
        out = []
        for choice in body["choices"]:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("message"), dict):
                msg = _chat_message(choice["message"])
                if msg is not None:
                    out.append(msg)
            elif "text" in choice:
                out.append(Message("assistant", [Part("text", str(choice["text"]))]))
        return out
    if isinstance(body.get("output"), list):
        return [m for m in map(_responses_item, body["output"]) if m is not None]
    if isinstance(body.get("content"), list):  # Anthropic
        return [Message(str(body.get("role") or "assistant"), _parts(body["content"]))]
    if isinstance(body.get("message"), dict):  # Ollama chat
        msg = _chat_message(body["message"])
        return [msg] if msg else []
    if isinstance(body.get("response"), str):  # Ollama generate
        return [Message("assistant", [Part("text", body["response"])])]
    if isinstance(body.get("data"), list) and body.get("object") == "list":
        return [Message("assistant", [Part("placeholder", f"{len(body['data'])} embeddings")])]
    return []


def tool_names(body: Any) -> list[str]:
    """Names of the tools the request offered the model (any of the three formats)."""
    tools = body.get("tools") if isinstance(body, dict) else None
    names = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            fn: dict[str, Any] = (
                tool["function"] if isinstance(tool.get("function"), dict) else tool
            )
            names.append(str(fn.get("name") or tool.get("type") or "tool"))
    return names


def preview(raw: bytes | None) -> str:
    """The last prompt message's text, shortened, for the Requests table."""
    if not raw:
        return ""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    for message in reversed(conversation(body)):
        text = " ".join(message.text.split())
        if text:
            return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    return ""
