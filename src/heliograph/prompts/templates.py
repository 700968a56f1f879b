"""``{{name}}`` templates: parsed once when a version is saved, rendered when it is used.

Templates are data, never code. A placeholder is ``{{`` + optional spaces or tabs + an ASCII
identifier + optional spaces or tabs + ``}}``; there is no expression language, no filter, no
attribute or file access, and no recursion (a value containing ``{{x}}`` is inserted as it is).
Any other ``{{`` is an error at save time, with the message index and character position, so a
typo never reaches production as literal braces. A lone ``}}`` is plain text. Identifiers are
ASCII (``[A-Za-z_][A-Za-z0-9_]*``): ``{{ café }}`` is rejected, always.

Rendering is a join of pre-split segments, cheap enough for the gateway's request path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

PLACEHOLDER = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}\}", re.ASCII)
MAX_INPUT_BYTES = 64 * 1024  # the JSON of all inputs together
# A rendered prompt, all messages together, in characters. Inputs are bounded, but a value is
# inserted wherever its name appears: a 64 KiB input in a template naming it 50,000 times
# would be gigabytes. Reckoned before anything is joined.
MAX_RENDERED_CHARS = 8 * 1024 * 1024

InputValue = str | int | float | bool


class TemplateError(ValueError):
    """A template that does not parse: ``index`` is the message, ``position`` the character."""

    def __init__(self, index: int, position: int, problem: str) -> None:
        super().__init__(f"messages[{index}].content: {problem} at character {position}")
        self.index = index
        self.position = position


class InputError(ValueError):
    """Inputs that cannot render: ``status`` is 400, or 413 when they are too large."""

    def __init__(self, message: str, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text alternating with variable names (``parts[1::2]``)."""

    parts: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.parts[1::2]


def parse(text: str, index: int = 0) -> Template:
    """Split ``text`` into literals and names; raise TemplateError on any malformed ``{{``."""
    parts: list[str] = []
    start = 0
    while (at := text.find("{{", start)) >= 0:
        match = PLACEHOLDER.match(text, at)
        if match is None:
            close = text.find("}}", at + 2)
            problem = "unclosed '{{'" if close < 0 else "'{{' not followed by a variable name"
            raise TemplateError(index, at, problem)
        parts += [text[start:at], match.group(1)]
        start = match.end()
    parts.append(text[start:])
    return Template(tuple(parts))


def placeholders(templates: Sequence[Template]) -> list[str]:
    """Every variable name used, in order of first use."""
    return list(dict.fromkeys(name for t in templates for name in t.names))


def check_inputs(inputs: object) -> dict[str, str]:
    """Inputs as text: an object of strings, numbers and booleans; names and values together
    at most 64 KiB of UTF-8."""
    if not isinstance(inputs, Mapping):
        raise InputError("inputs must be a JSON object", "invalid_inputs")
    out: dict[str, str] = {}
    size = 2
    for name, value in inputs.items():
        if not isinstance(name, str):
            raise InputError("input names must be strings", "invalid_inputs")
        out[name] = as_text(name, value)
        size += len(name.encode()) + len(out[name].encode()) + 4
        if size > MAX_INPUT_BYTES:
            raise InputError(
                f"inputs are larger than {MAX_INPUT_BYTES} bytes", "inputs_too_large", 413
            )
    return out


def as_text(name: str, value: object) -> str:
    """A value as it is substituted: strings as they are, numbers and booleans as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError as exc:  # integers beyond 64 bits
            raise InputError(f"input {name!r} is out of range", "invalid_inputs") from exc
    raise InputError(f"input {name!r} must be a string, a number or a boolean", "invalid_inputs")


def rendered_size(template: Template, values: Mapping[str, str]) -> int:
    """The length ``render`` would give, in characters, without rendering."""
    parts = template.parts
    return sum(map(len, parts[0::2])) + sum(len(values[name]) for name in parts[1::2])


def render(template: Template, values: Mapping[str, str]) -> str:
    """Substitute ``values`` (already text, every name present) in one pass, never again."""
    parts = template.parts
    if len(parts) == 1:
        return parts[0]
    out = list(parts)
    for i in range(1, len(parts), 2):
        out[i] = values[parts[i]]
    return "".join(out)
