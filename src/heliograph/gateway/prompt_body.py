"""A chat request that names a managed prompt: render it into the body the upstream receives.

The client sends ``prompt_id`` (the prompt's name), optionally ``prompt_version`` or
``prompt_label`` (default ``production``), and ``inputs``. The version's rendered messages go
before the client's own ``messages``; its model and parameters fill only what the client left
out (the client wins); the prompt fields are removed. Only OpenAI chat completions bodies are
rendered so far. Plain requests never come here: the proxy checks for ``"prompt_id"`` in the
raw bytes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from heliograph.capture.frames import PromptFrame
from heliograph.gateway.prompt_cache import PromptCache
from heliograph.prompts.templates import InputError, check_inputs
from heliograph.prompts.versions import Version, render

MARKER = b'"prompt_id"'
FIELDS = ("prompt_id", "prompt_version", "prompt_label", "inputs")
DEFAULT_LABEL = "production"
MAX_NAME = 100


class PromptRefused(Exception):
    """Why a prompt request is answered with an error and not forwarded."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes  # what goes upstream
    frame: PromptFrame  # what the record says about the prompt


def wants_prompt(protocol: str, method: str, rest: str, body: bytes) -> bool:
    """Whether this request may name a prompt: a cheap test on the raw bytes."""
    return (
        method == "POST"
        and protocol == "openai"
        and rest.endswith("/chat/completions")
        and MARKER in body
    )


async def render_body(cache: PromptCache, org_id: str, body: bytes) -> Rendered | None:
    """The body with its prompt rendered; None when it names no prompt after all (the bytes
    appeared inside a message, say). Raises PromptRefused."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # not ours to judge: the upstream answers a malformed body
    if not isinstance(doc, dict) or "prompt_id" not in doc:
        return None
    name, number, label, inputs = (doc.pop(f, None) for f in FIELDS)
    version = await _find(cache, org_id, name, number, label)
    try:
        given = check_inputs({} if inputs is None else inputs)
        messages = render(version, given)
    except InputError as exc:
        raise PromptRefused(exc.status, str(exc), exc.code) from exc
    apply_version(doc, version, messages)
    frame: PromptFrame = {"name": version.name, "v": version.version, "inputs": given}
    if number is None:
        frame["label"] = label or DEFAULT_LABEL
    return Rendered(orjson.dumps(doc), frame)


async def _find(
    cache: PromptCache, org_id: str, name: object, number: object, label: object
) -> Version:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise PromptRefused(400, "prompt_id must be a prompt's name", "invalid_prompt")
    if number is not None and label is not None:
        msg = "give prompt_version or prompt_label, not both"
        raise PromptRefused(400, msg, "invalid_prompt")
    if number is not None:
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**31:
            raise PromptRefused(400, "prompt_version must be a positive integer", "invalid_prompt")
        found = await cache.by_version(org_id, name, number)
        if found is None:
            raise PromptRefused(404, f"prompt {name!r} has no version {number}", "not_found")
        return found
    if label is None:
        label = DEFAULT_LABEL
    if not isinstance(label, str) or not label:
        raise PromptRefused(400, "prompt_label must be a label's name", "invalid_prompt")
    found = cache.by_label(org_id, name, label)
    if found is None:
        msg = f"prompt {name!r} has no version labelled {label!r} (or no such prompt)"
        raise PromptRefused(404, msg, "not_found")
    return found


def apply_version(doc: dict[str, Any], version: Version, messages: list[dict[str, str]]) -> None:
    """Prepend the rendered messages; the version's model and params fill only gaps."""
    theirs = doc.get("messages")
    if theirs is not None and not isinstance(theirs, list):
        raise PromptRefused(400, "messages must be a list", "invalid_request")
    doc["messages"] = [*messages, *(theirs or [])]
    if version.model and not doc.get("model"):
        doc["model"] = version.model
    for param, value in version.params.items():
        if doc.get(param) is None:
            doc[param] = value
