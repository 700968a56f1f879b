"""A rendered prompt version written into each chat protocol's own body.

A version is written once, in OpenAI's words (system / developer / user / assistant messages;
temperature, max_tokens, top_p, response_format, tools, stop, seed). Each route takes it in
its own wire format, so each gets one function here that says where every part goes, and the
README repeats the mapping for users:

- OpenAI chat completions: ``messages``; every parameter by its own name.
- OpenAI Responses: the messages become ``input`` items (a string ``input`` becomes a user
  message after them). ``instructions`` is left to the client: it is not carried over by
  ``previous_response_id``, while input items are, so the prompt stays part of the
  conversation either way. max_tokens → ``max_output_tokens``, response_format →
  ``text.format``, function tools flattened; stop and seed have no Responses equivalent.
- Anthropic messages: system and developer messages joined into ``system`` (before the
  client's own), the others before ``messages``; stop → ``stop_sequences``, function tools →
  ``input_schema`` tools; response_format and seed have no equivalent. max_tokens is
  required: the version's, else the client's, else a 400.
- Ollama ``/api/chat``: ``messages``; temperature, top_p, seed, stop and max_tokens
  (``num_predict``) in ``options``; a JSON response_format → ``format``; tools as they are.

Everywhere the prompt's messages come first, except that the client's own leading system
messages join the prompt's leading ones (a conversation has its system messages first). The
client wins every other choice: the version's model fills an empty one (a virtual
``prompt:`` model is always replaced), its parameters only those the client did not set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from heliograph.prompts.versions import Version

SYSTEM_ROLES = frozenset({"system", "developer"})
Doc = dict[str, Any]
Messages = list[dict[str, str]]


class WireError(ValueError):
    """A body the prompt cannot be written into (400): the message says which field."""


def merge(prompt: list[Any], theirs: list[Any]) -> list[Any]:
    """The prompt's messages before the client's, both leading system runs first."""
    p, c = _leading_system(prompt), _leading_system(theirs)
    return [*prompt[:p], *theirs[:c], *prompt[p:], *theirs[c:]]


def _leading_system(messages: list[Any]) -> int:
    n = 0
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in SYSTEM_ROLES:
            break
        n += 1
    return n


def _list(doc: Doc, field: str) -> list[Any]:
    value = doc.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise WireError(f"{field} must be a list")
    return value


def _unset(doc: Mapping[str, Any], field: str) -> bool:
    return doc.get(field) is None


def set_model(doc: Doc, version: Version, virtual: bool) -> None:
    """A virtual model is replaced by the version's; a real one only filled when empty."""
    if virtual:
        if not version.model:
            msg = f"prompt {version.name!r} version {version.version} names no model"
            raise WireError(msg)
        doc["model"] = version.model
    elif version.model and not doc.get("model"):
        doc["model"] = version.model


def openai_chat(doc: Doc, version: Version, messages: Messages, virtual: bool) -> None:
    doc["messages"] = merge(messages, _list(doc, "messages"))
    set_model(doc, version, virtual)
    for param, value in version.params.items():
        if param == "max_tokens" and not _unset(doc, "max_completion_tokens"):
            continue  # the client's newer name for the same limit
        if _unset(doc, param):
            doc[param] = value


def openai_responses(doc: Doc, version: Version, messages: Messages, virtual: bool) -> None:
    given = doc.get("input")
    if isinstance(given, str):
        theirs: list[Any] = [{"role": "user", "content": given}]
    elif given is None or isinstance(given, list):
        theirs = given or []
    else:
        raise WireError("input must be a string or a list")
    doc["input"] = merge(messages, theirs)
    set_model(doc, version, virtual)
    params = version.params
    for name in ("temperature", "top_p"):
        if name in params and _unset(doc, name):
            doc[name] = params[name]
    if "max_tokens" in params and _unset(doc, "max_output_tokens"):
        doc["max_output_tokens"] = params["max_tokens"]
    if "tools" in params and _unset(doc, "tools"):
        doc["tools"] = [_flat_tool(t) for t in params["tools"]]
    fmt = params.get("response_format")
    if fmt is not None:
        text = doc.get("text")
        if text is None:
            text = doc["text"] = {}
        if not isinstance(text, dict):
            raise WireError("text must be an object")
        if _unset(text, "format"):
            text["format"] = _text_format(fmt)


def _flat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions function tool in the Responses API's flat shape."""
    function = tool.get("function")
    if tool.get("type") == "function" and isinstance(function, dict):
        return {"type": "function", **function}
    return tool


def _text_format(fmt: dict[str, Any]) -> dict[str, Any]:
    """response_format as the Responses API's ``text.format``."""
    schema = fmt.get("json_schema")
    if fmt.get("type") == "json_schema" and isinstance(schema, dict):
        return {"type": "json_schema", **schema}
    return fmt


def anthropic_messages(doc: Doc, version: Version, messages: Messages, virtual: bool) -> None:
    system = [m["content"] for m in messages if m["role"] in SYSTEM_ROLES]
    others = [m for m in messages if m["role"] not in SYSTEM_ROLES]
    doc["messages"] = [*others, *_list(doc, "messages")]
    if system:
        text = "\n\n".join(system)
        theirs = doc.get("system")
        if theirs is None or theirs == "":
            doc["system"] = text
        elif isinstance(theirs, str):
            doc["system"] = text + "\n\n" + theirs
        elif isinstance(theirs, list):
            doc["system"] = [{"type": "text", "text": text}, *theirs]
        else:
            raise WireError("system must be a string or a list of content blocks")
    set_model(doc, version, virtual)
    params = version.params
    # The SDK makes every call send max_tokens, so a client value is no deliberate choice:
    # the version's limit is the prompt's author's, and wins.
    if "max_tokens" in params:
        doc["max_tokens"] = params["max_tokens"]
    elif _unset(doc, "max_tokens"):
        raise WireError(
            "max_tokens is required by Anthropic: set it in the request "
            "or in the prompt version's params"
        )
    for name in ("temperature", "top_p"):
        if name in params and _unset(doc, name):
            doc[name] = params[name]
    if "stop" in params and _unset(doc, "stop_sequences"):
        doc["stop_sequences"] = _stop_list(params["stop"])
    if "tools" in params and _unset(doc, "tools"):
        doc["tools"] = [_anthropic_tool(t) for t in params["tools"]]


def _stop_list(stop: str | list[str]) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop)


def _anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions function tool as an Anthropic tool; others as they are."""
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        return tool
    out: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return out


OLLAMA_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "max_tokens": "num_predict",
}


def ollama_chat(doc: Doc, version: Version, messages: Messages, virtual: bool) -> None:
    doc["messages"] = merge(messages, _list(doc, "messages"))
    set_model(doc, version, virtual)
    params = version.params
    options = doc.get("options")
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        raise WireError("options must be an object")
    for param, option in OLLAMA_OPTIONS.items():
        if param in params and _unset(options, option):
            value = params[param]
            options[option] = _stop_list(value) if param == "stop" else value
    if options:
        doc["options"] = options
    fmt = params.get("response_format")
    if fmt is not None and _unset(doc, "format"):
        schema = fmt.get("json_schema")
        if fmt.get("type") == "json_object":
            doc["format"] = "json"
        elif fmt.get("type") == "json_schema" and isinstance(schema, dict) and "schema" in schema:
            doc["format"] = schema["schema"]
    if "tools" in params and _unset(doc, "tools"):
        doc["tools"] = params["tools"]


def ollama_show(doc: Doc, version: Version, messages: Messages, virtual: bool) -> None:
    """Describe the model a virtual model runs: Open WebUI asks for its capabilities."""
    set_model(doc, version, True)
    if "name" in doc:
        doc["name"] = version.model


Writer = Callable[[Doc, Version, Messages, bool], None]


def writer_for(protocol: str, method: str, rest: str) -> Writer | None:
    """The function that writes a prompt into this request's body; None when the request is
    not one that can carry a prompt (cheap: string tests only)."""
    if method != "POST":
        return None
    if protocol == "openai":
        if rest.endswith("/chat/completions"):
            return openai_chat
        if rest.endswith("/responses"):
            return openai_responses
    elif protocol == "anthropic":
        if rest.endswith("/v1/messages"):
            return anthropic_messages
    elif protocol == "ollama":
        if rest == "/api/chat":
            return ollama_chat
        if rest == "/api/show":
            return ollama_show
    return None
