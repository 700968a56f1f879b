"""What a prompt version is: validated when saved, compiled once, rendered per use.

``check_version`` turns an API body into the stored fields (or raises ``VersionError`` with
the reason, a ``TemplateError`` for a template that does not parse). ``Version.from_row``
parses a stored row once; ``render`` fills it with inputs. The gateway's prompt cache will
hold ``Version`` objects and call ``render`` on the request path, so that is a pure function
with no store access.

Variables: a version declares ``{"name": default-or-null}``. When ``variables`` is omitted it
is derived from the placeholders, each required (default null). When given, every placeholder
must be declared; declared variables the messages do not use are allowed (and ignored).
Inputs that name no declared variable are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from heliograph.prompts.templates import (
    MAX_RENDERED_CHARS,
    InputError,
    Template,
    as_text,
    check_inputs,
    parse,
    placeholders,
    rendered_size,
)
from heliograph.prompts.templates import render as render_template

ROLES = ("system", "developer", "user", "assistant")
MAX_MESSAGES = 200
MAX_CONTENT = 256 * 1024
MAX_MODEL = 255
MAX_UPSTREAM = 64
MAX_MESSAGE = 2000
MAX_VARIABLES = 200
MAX_DEFAULT = 64 * 1024
PARAMS = ("temperature", "max_tokens", "top_p", "response_format", "tools", "stop", "seed")
MAX_STOP = 4
MAX_JSON_PARAM = 64 * 1024
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


class VersionError(ValueError):
    """A version body that cannot be saved (the message says which field and why)."""


@dataclass(frozen=True, slots=True)
class Version:
    """A stored version, its templates parsed: what ``render`` needs and nothing else."""

    name: str
    version: int
    roles: tuple[str, ...]
    templates: tuple[Template, ...]
    model: str | None
    upstream: str | None
    params: Mapping[str, Any]
    defaults: Mapping[str, str | None]  # declared variables, defaults already as text

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Version:
        """From a store row with at least name, version, messages, model, upstream, params
        and variables."""
        messages = row["messages"]
        return cls(
            name=row["name"],
            version=row["version"],
            roles=tuple(m["role"] for m in messages),
            templates=tuple(parse(m["content"], i) for i, m in enumerate(messages)),
            model=row["model"],
            upstream=row["upstream"],
            params=row["params"] or {},
            defaults={k: None if v is None else as_text(k, v) for k, v in row["variables"].items()},
        )


def render(version: Version, inputs: object) -> list[dict[str, str]]:
    """The version's messages with ``inputs`` substituted.

    Raises InputError: inputs not an object or holding other than strings, numbers and
    booleans (400), larger than 64 KiB (413), a variable with no input and no default
    (400, naming it), or a rendering longer than MAX_RENDERED_CHARS (413, found before
    anything is rendered).
    """
    return render_checked(version, check_inputs(inputs))


def render_checked(version: Version, given: Mapping[str, str]) -> list[dict[str, str]]:
    """``render`` for inputs ``check_inputs`` already passed (the gateway checks them once)."""
    values: dict[str, str] = {}
    for name, default in version.defaults.items():
        value = given.get(name, default)
        if value is None:
            raise InputError(f"missing variable {name!r} (it has no default)", "missing_variable")
        values[name] = value
    size = 0
    for template in version.templates:
        size += rendered_size(template, values)
        if size > MAX_RENDERED_CHARS:
            raise InputError(
                f"the rendered prompt would be longer than {MAX_RENDERED_CHARS} characters",
                "prompt_too_large",
                413,
            )
    return [
        {"role": role, "content": render_template(t, values)}
        for role, t in zip(version.roles, version.templates, strict=True)
    ]


def check_version(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The stored fields of a new version from an API body (messages, model, upstream,
    params, variables, message)."""
    unknown = set(doc) - {"messages", "model", "upstream", "params", "variables", "message"}
    if unknown:
        raise VersionError(f"unknown field {sorted(unknown)[0]!r}")
    messages = _messages(doc.get("messages"))
    used = placeholders([parse(m["content"], i) for i, m in enumerate(messages)])
    variables = _variables(doc.get("variables"), used)
    return {
        "messages": messages,
        "model": _text(doc.get("model"), "model", MAX_MODEL),
        "upstream": _text(doc.get("upstream"), "upstream", MAX_UPSTREAM),
        "params": check_params(doc.get("params")),
        "variables": variables,
        "message": _text(doc.get("message"), "message", MAX_MESSAGE) or "",
    }


def _messages(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value or len(value) > MAX_MESSAGES:
        raise VersionError(f"messages must be a list of 1 to {MAX_MESSAGES} messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise VersionError(f'messages[{i}] must be {{"role", "content"}}')
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise VersionError(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        if not isinstance(content, str) or len(content) > MAX_CONTENT:
            raise VersionError(
                f"messages[{i}].content must be a string of at most {MAX_CONTENT} characters"
            )
        out.append({"role": role, "content": content})
    return out


def _variables(value: object, used: list[str]) -> dict[str, Any]:
    if value is None:
        return dict.fromkeys(used)
    if not isinstance(value, dict) or len(value) > MAX_VARIABLES:
        raise VersionError(f"variables must be an object of at most {MAX_VARIABLES} names")
    for name, default in value.items():
        if not NAME.fullmatch(name):
            raise VersionError(f"variable name {name!r} is not an identifier")
        if default is not None:
            try:
                text = as_text(name, default)
            except InputError as exc:
                raise VersionError(
                    f"variables.{name} must be a string, a number, a boolean or null"
                ) from exc
            if len(text) > MAX_DEFAULT:
                raise VersionError(f"default of {name!r} is longer than {MAX_DEFAULT}")
    undeclared = [name for name in used if name not in value]
    if undeclared:
        raise VersionError(f"variable {undeclared[0]!r} is used but not declared in variables")
    return dict(value)


def _text(value: object, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise VersionError(
            f"{field} must be a string of at most {limit} characters (and no NUL character)"
        )
    return value


def check_params(value: object) -> dict[str, Any]:
    """Only the parameters a prompt may set, each of the type the providers take."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise VersionError("params must be an object")
    for name, item in value.items():
        if name not in PARAMS:
            raise VersionError(f"params.{name} is not allowed (allowed: {', '.join(PARAMS)})")
        problem = _param_problem(name, item)
        if problem:
            raise VersionError(f"params.{name} must be {problem}")
    return dict(value)


def _number(item: object, low: float, high: float) -> bool:
    return (
        isinstance(item, int | float)
        and not isinstance(item, bool)
        and math.isfinite(item)
        and low <= item <= high
    )


def _param_problem(name: str, item: object) -> str | None:
    """What ``item`` should be, or None if it is fine."""
    if name == "temperature":
        return None if _number(item, 0, 2) else "a number from 0 to 2"
    if name == "top_p":
        return None if _number(item, 0, 1) else "a number from 0 to 1"
    if name in ("max_tokens", "seed"):
        low = 1 if name == "max_tokens" else -(2**63)
        ok = isinstance(item, int) and not isinstance(item, bool) and low <= item < 2**63
        return None if ok else f"an integer of at least {low}"
    if name == "stop":
        if isinstance(item, str) or (
            isinstance(item, list)
            and 0 < len(item) <= MAX_STOP
            and all(isinstance(s, str) for s in item)
        ):
            return None
        return f"a string or a list of 1 to {MAX_STOP} strings"
    if name == "response_format":
        ok = isinstance(item, dict) and isinstance(item.get("type"), str)
        return None if ok and _small(item) else 'an object with a "type" (at most 64 KiB)'
    ok = isinstance(item, list) and all(isinstance(t, dict) for t in item)  # tools
    return None if ok and _small(item) else "a list of tool objects (at most 64 KiB)"


def _small(item: object) -> bool:
    return len(orjson.dumps(item)) <= MAX_JSON_PARAM
