"""Offline token counts for requests whose response carried no usage.

A client that aborts a stream, or a server that omits usage, still cost money; the writer
counts the tokens itself with OpenAI's BPE vocabularies (bpe-openai, no network, vocabularies
embedded in its Rust extension) and marks the numbers as estimated.

Chat framing follows OpenAI's documented recipe (cookbook "How to count tokens with
tiktoken"): 3 tokens per message, +1 when a message has a name, +3 to prime the reply, and
the tools formula for function definitions. It is exact for OpenAI text chats; for other
providers' models it is an estimate with an OpenAI vocabulary (o200k_base).

Images cannot be measured without decoding them, so each counts a fixed, documented amount:
OpenAI ``detail: low`` costs 85 tokens; any other detail counts as one 1024x1024 image at high
detail, 85 + 4 tiles x 170 = 765 (gpt-4o-mini bills images at 2833 + 5667 per tile: 2833 and
25501); Ollama's base64 ``images`` count 765 each. Anthropic images count 1600 (a ~1.15-megapixel image at width x height / 750).

We call the Rust tokenizer's ``count`` (``bpe_openai._bindings``) rather than the
tiktoken-style ``Encoding``: it counts without building token lists, and ``Encoding``
refuses texts over 200,000 tokens, which long-context prompts exceed. The vocabularies are
compiled into that extension, so nothing is read from disk or the network.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import warnings
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, cast

import orjson

O200K = "o200k_base"
CL100K = "cl100k_base"
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_LOW, IMAGE_HIGH = 85, 765
MINI_IMAGE_LOW, MINI_IMAGE_HIGH = 2833, 2833 + 4 * 5667
ANTHROPIC_IMAGE = 1600
_O200K_PREFIXES = (
    *("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss"),
    *("o1", "o3", "o4", "codex"),
)
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")
_IMAGE_TYPES = frozenset({"image_url", "input_image", "image"})


class _Counter(Protocol):
    def count(self, text: str) -> int: ...


@cache
def _tokenizer(encoding: str) -> _Counter:
    """Built on first use and kept (o200k ~0.07 s, cl100k ~0.04 s; ~90 MB for both)."""
    return cast(_Counter, _bindings().tokenizer_for_encoding(encoding))


def _bindings() -> Any:
    """bpe-openai's Rust extension, loaded without running the package's ``__init__``.

    ``import bpe_openai`` parses the whole cl100k vocabulary in Python at import time (~1 s,
    ~70 MB we never use, plus a DeprecationWarning); the extension alone loads in ~1 ms.
    """
    package = importlib.util.find_spec("bpe_openai")
    for folder in (package and package.submodule_search_locations) or ():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_bindings{suffix}"
            spec = importlib.util.spec_from_file_location("bpe_openai._bindings", path)
            if path.is_file() and spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    with warnings.catch_warnings():  # fallback: the ordinary, slower import
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module("bpe_openai._bindings")


@lru_cache(maxsize=1024)
def encoding_for_model(model: str | None) -> str:
    """cl100k_base for gpt-4 / gpt-3.5 / ada-002 / embedding-3; o200k_base otherwise."""
    name = (model or "").strip().lower().rsplit("/", 1)[-1].removeprefix("ft:")
    if name.startswith(_O200K_PREFIXES):
        return O200K
    return CL100K if name.startswith(_CL100K_PREFIXES) else O200K


def count_text_tokens(text: str, model: str | None) -> int:
    """Tokens in plain text (special-token strings count as ordinary text)."""
    if not text:
        return 0
    counter = _tokenizer(encoding_for_model(model))
    try:
        return counter.count(text)
    except UnicodeEncodeError:  # lone surrogates from lenient JSON: replace, then count
        return counter.count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))


def count_output_tokens(text: str, model: str | None) -> int:
    """Tokens of generated text, as providers count completion tokens (no framing)."""
    return count_text_tokens(text, model)


def estimate_chat_prompt_tokens(messages: list[Any], model: str | None) -> int:
    """Prompt tokens of a Chat Completions message list, with OpenAI's framing."""
    return sum(_message_tokens(m, model) for m in messages) + REPLY_PRIMING


def estimate_prompt_tokens(request_doc: Any, endpoint: str, model: str | None) -> int | None:
    """Prompt tokens of a request body for its endpoint, or None if there is nothing to count."""
    if not isinstance(request_doc, Mapping):
        return None
    kind = _endpoint_kind(endpoint)
    if kind is None:
        return None
    if model is None and isinstance(request_doc.get("model"), str):
        model = request_doc["model"]
    return _ESTIMATORS[kind](request_doc, model)


def _endpoint_kind(endpoint: str) -> str | None:
    path = endpoint.split("?", 1)[0].rstrip("/")
    for suffix, kind in _ENDPOINT_SUFFIXES:
        if path.endswith(suffix):
            return kind
    return None


def _message_tokens(message: Any, model: str | None) -> int:
    if not isinstance(message, Mapping):
        return 0
    tokens = TOKENS_PER_MESSAGE + _text(message.get("role"), model)
    tokens += _content_tokens(message.get("content"), model)
    if isinstance(message.get("name"), str):
        tokens += TOKENS_PER_NAME + _text(message["name"], model)
    for call in _as_list(message.get("tool_calls")):
        tokens += _call_tokens(call.get("function") if isinstance(call, Mapping) else None, model)
    tokens += _call_tokens(message.get("function_call"), model)
    return tokens + len(_as_list(message.get("images"))) * IMAGE_HIGH  # Ollama's images


def _call_tokens(function: Any, model: str | None) -> int:
    if not isinstance(function, Mapping):
        return 0
    return _text(function.get("name"), model) + _json_text(function.get("arguments"), model)


def _content_tokens(content: Any, model: str | None) -> int:
    if isinstance(content, str):
        return count_text_tokens(content, model)
    return sum(_part_tokens(part, model) for part in _as_list(content))


def _part_tokens(part: Any, model: str | None) -> int:
    """One content part: OpenAI text/image parts, Responses parts, Anthropic blocks."""
    if isinstance(part, str):
        return count_text_tokens(part, model)
    if not isinstance(part, Mapping):
        return 0
    kind = part.get("type")
    if kind in _IMAGE_TYPES:
        return _image_tokens(part, model)
    if kind == "tool_use":
        return _text(part.get("name"), model) + _json_text(part.get("input"), model)
    if kind == "tool_result":
        return _content_tokens(part.get("content"), model)
    for key in ("text", "thinking", "refusal"):
        if isinstance(part.get(key), str):
            return count_text_tokens(part[key], model)
    return 0


def _image_tokens(part: Mapping[str, Any], model: str | None) -> int:
    if part.get("type") == "image":  # Anthropic image block
        return ANTHROPIC_IMAGE
    image_url = part.get("image_url")
    detail = image_url.get("detail") if isinstance(image_url, Mapping) else part.get("detail")
    low = detail == "low"
    if (model or "").lower().rsplit("/", 1)[-1].startswith("gpt-4o-mini"):
        return MINI_IMAGE_LOW if low else MINI_IMAGE_HIGH
    return IMAGE_LOW if low else IMAGE_HIGH


def _tools_tokens(tools: Any, model: str | None) -> int:
    """OpenAI's cookbook formula for function definitions (any of the three tool shapes)."""
    specs = [spec for tool in _as_list(tools) if (spec := _tool_spec(tool)) is not None]
    if not specs:
        return 0
    return sum(_function_tokens(*spec, model) for spec in specs) + 12


def _tool_spec(tool: Any) -> tuple[str, str, Mapping[str, Any]] | None:
    """(name, description, JSON schema) of a Chat, Responses or Anthropic tool."""
    if not isinstance(tool, Mapping):
        return None
    function = tool.get("function", tool)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        return None
    schema = function.get("parameters", function.get("input_schema"))
    description = function.get("description")
    return (
        function["name"],
        description if isinstance(description, str) else "",
        schema if isinstance(schema, Mapping) else {},
    )


def _function_tokens(
    name: str, description: str, schema: Mapping[str, Any], model: str | None
) -> int:
    init = 10 if encoding_for_model(model) == CL100K else 7  # the cookbook's per-model constant
    tokens = init + count_text_tokens(f"{name}:{description.removesuffix('.')}", model)
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and properties:
        tokens += 3 + sum(_property_tokens(k, v, model) for k, v in properties.items())
    return tokens


def _property_tokens(key: str, prop: Any, model: str | None) -> int:
    if not isinstance(prop, Mapping):
        return 3 + count_text_tokens(str(key), model)
    tokens = 3
    enum = prop.get("enum")
    if isinstance(enum, list):
        tokens += -3 + sum(3 + count_text_tokens(str(item), model) for item in enum)
    description = str(prop.get("description", "")).removesuffix(".")
    tokens += count_text_tokens(f"{key}:{prop.get('type', '')}:{description}", model)
    nested = {k: v for k, v in prop.items() if k not in ("type", "description", "enum")}
    return tokens + (_json_text(nested, model) if nested else 0)  # beyond the cookbook: nesting


def _chat(doc: Mapping[str, Any], model: str | None) -> int | None:
    messages = doc.get("messages")
    if not isinstance(messages, list):
        return None
    tools = _tools_tokens(doc.get("tools") or doc.get("functions"), model)
    return estimate_chat_prompt_tokens(messages, model) + tools


def _plain_prompt(doc: Mapping[str, Any], model: str | None) -> int | None:
    """Completions, embeddings and Ollama generate: text (or token ids) without framing."""
    parts = [doc.get(key) for key in ("system", "prompt", "input") if doc.get(key) is not None]
    if not parts:
        return None
    images = len(_as_list(doc.get("images"))) * IMAGE_HIGH
    return sum(_prompt_value_tokens(part, model) for part in parts) + images


def _prompt_value_tokens(value: Any, model: str | None) -> int:
    if isinstance(value, str):
        return count_text_tokens(value, model)
    if isinstance(value, int) and not isinstance(value, bool):
        return 1  # a token id
    if isinstance(value, list):
        return sum(_prompt_value_tokens(item, model) for item in value)
    return 0


def _responses(doc: Mapping[str, Any], model: str | None) -> int | None:
    items, instructions = doc.get("input"), doc.get("instructions")
    if items is None and instructions is None:
        return None
    tokens = REPLY_PRIMING + _tools_tokens(doc.get("tools"), model)
    if isinstance(instructions, str):
        tokens += _message_tokens({"role": "developer", "content": instructions}, model)
    if isinstance(items, str):
        return tokens + _message_tokens({"role": "user", "content": items}, model)
    return tokens + sum(_response_item_tokens(item, model) for item in _as_list(items))


def _response_item_tokens(item: Any, model: str | None) -> int:
    if not isinstance(item, Mapping):
        return 0
    kind = item.get("type", "message")
    if kind == "function_call":
        return TOKENS_PER_MESSAGE + _call_tokens(item, model)
    if kind == "function_call_output":
        return TOKENS_PER_MESSAGE + _content_tokens(item.get("output"), model)
    return _message_tokens(item, model) if kind == "message" else 0


def _anthropic(doc: Mapping[str, Any], model: str | None) -> int | None:
    messages = doc.get("messages")
    if not isinstance(messages, list):
        return None
    system = doc.get("system")
    framed = [{"role": "system", "content": system}, *messages] if system else messages
    return estimate_chat_prompt_tokens(framed, model) + _tools_tokens(doc.get("tools"), model)


def _text(value: Any, model: str | None) -> int:
    return count_text_tokens(value, model) if isinstance(value, str) else 0


def _json_text(value: Any, model: str | None) -> int:
    """Tool arguments arrive as a JSON string (OpenAI) or an object (Anthropic, Ollama)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return count_text_tokens(value, model)
    return count_text_tokens(orjson.dumps(value, default=str).decode(), model)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


_Estimator = Callable[[Mapping[str, Any], str | None], int | None]
_ESTIMATORS: Mapping[str, _Estimator] = MappingProxyType(
    {"chat": _chat, "plain": _plain_prompt, "responses": _responses, "anthropic": _anthropic}
)
_ENDPOINT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("/chat/completions", "chat"),
    ("/api/chat", "chat"),
    ("/api/generate", "plain"),
    ("/completions", "plain"),
    ("/embeddings", "plain"),
    ("/api/embed", "plain"),
    ("/responses", "responses"),
    ("/messages", "anthropic"),
)
