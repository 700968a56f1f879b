"""A chat request that names a managed prompt: render it into the body the upstream receives.

Two ways to name one. In the body: ``prompt_id`` (the prompt's name), optionally
``prompt_version`` or ``prompt_label`` (default ``production``), and ``inputs``; the prompt
fields are removed before the body goes on. As a virtual model: ``model`` is
``prompt:<name>``, ``prompt:<name>@<label>`` or ``prompt:<name>:<version>``, with variables
from their defaults (a chat front end has no way to send inputs). Where the rendered version
goes in each protocol's body is ``prompt_wire``'s business.

Plain requests never come here: the proxy first asks ``wants_prompt``, a test on the path and
the raw bytes (``"prompt_id"`` or ``"prompt:`` must appear), so they pay no JSON parse.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from heliograph.capture.frames import PromptFrame
from heliograph.gateway.prompt_cache import PromptCache
from heliograph.gateway.prompt_wire import WireError, Writer, ollama_show, writer_for
from heliograph.prompts.templates import InputError, check_inputs
from heliograph.prompts.versions import Version, render_checked

STEM = b'"prompt'  # then _id" (the body form) or : (a virtual model's name)
TAILS = (b'_id"', b":")
FIELDS = ("prompt_id", "prompt_version", "prompt_label", "inputs")
VIRTUAL = "prompt:"
DEFAULT_LABEL = "production"
MAX_NAME = 100
MAX_LABEL = 64  # the API's rule: a longer one can never exist (and is not echoed back)
VIRTUAL_FORMS = "prompt:<name>, prompt:<name>@<label> or prompt:<name>:<version>"


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
    upstream: str | None  # the upstream the version names, if any


def wants_prompt(protocol: str, method: str, rest: str, body: bytes) -> Writer | None:
    """How to write a prompt into this request, if it may name one: a cheap test on the path
    and the raw bytes."""
    writer = writer_for(protocol, method, rest)
    if writer is None:
        return None
    at = body.find(STEM)  # one pass finds both markers: every chat request pays for it
    while at >= 0:
        if body.startswith(TAILS, at + len(STEM)):
            return writer
        at = body.find(STEM, at + len(STEM))
    return None


async def render_body(
    cache: PromptCache, org_id: str, body: bytes, writer: Writer
) -> Rendered | None:
    """The body with its prompt rendered; None when it names no prompt after all (the bytes
    appeared inside a message, say). Raises PromptRefused."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # not ours to judge: the upstream answers a malformed body
    if not isinstance(doc, dict):
        return None
    model = doc.get("model")
    if writer is ollama_show and not isinstance(model, str):
        model = doc.get("name")  # Ollama's older field
    virtual = isinstance(model, str) and model.startswith(VIRTUAL)
    if "prompt_id" in doc and writer is not ollama_show:
        if virtual:
            msg = "name a prompt with prompt_id or with a prompt: model, not both"
            raise PromptRefused(400, msg, "invalid_prompt")
        name, number, label, inputs = (doc.pop(f, None) for f in FIELDS)
    elif virtual:
        assert isinstance(model, str)
        name, number, label = parse_virtual(model)
        inputs = None
    else:
        return None
    version = await find(cache, org_id, name, number, label)
    try:
        given = check_inputs({} if inputs is None else inputs)
        messages = [] if writer is ollama_show else render_checked(version, given)
        writer(doc, version, messages, virtual)
    except InputError as exc:
        raise PromptRefused(exc.status, str(exc), exc.code) from exc
    except WireError as exc:
        raise PromptRefused(400, str(exc), "invalid_request") from exc
    frame: PromptFrame = {"name": version.name, "v": version.version, "inputs": given}
    if number is None:
        frame["label"] = label or DEFAULT_LABEL
    return Rendered(orjson.dumps(doc), frame, version.upstream)


def parse_virtual(model: str) -> tuple[str, int | None, str | None]:
    """(name, version number, label) of a ``prompt:`` model name."""
    rest = model[len(VIRTUAL) :]
    number: int | None = None
    label: str | None = None
    if "@" in rest:
        rest, label = rest.split("@", 1)
    elif ":" in rest:
        rest, digits = rest.rsplit(":", 1)
        if not digits.isdigit() or not digits.isascii() or len(digits) > 9:
            raise PromptRefused(400, f"a prompt model is {VIRTUAL_FORMS}", "invalid_prompt")
        number = int(digits)
    if not rest:
        raise PromptRefused(400, f"a prompt model is {VIRTUAL_FORMS}", "invalid_prompt")
    return rest, number, label


async def find(
    cache: PromptCache, org_id: str, name: object, number: object, label: object
) -> Version:
    """The version a request names, from the cache; PromptRefused (400, 404) otherwise."""
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
    if not isinstance(label, str) or not label or len(label) > MAX_LABEL:
        raise PromptRefused(400, "prompt_label must be a label's name", "invalid_prompt")
    found = cache.by_label(org_id, name, label)
    if found is None:
        msg = f"prompt {name!r} has no version labelled {label!r} (or no such prompt)"
        raise PromptRefused(404, msg, "not_found")
    return found
