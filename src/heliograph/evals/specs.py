"""What a saved evaluator is: a name, a kind and its configuration, checked when saved.

``parse_spec`` turns a JSON-like dict (an API body, a config file, a CLI shorthand already
expanded) into an ``EvaluatorSpec`` whose ``config`` is complete and normalised (every option
present with its default), or raises ``SpecError`` naming the field at fault, so a later API
or page can store the spec as it is and show it back. Patterns and schemas are compiled here
to be refused early (with the position of a regex error, the path of a schema error); the
evaluator that runs them (``checks``) compiles them again, once, for all its observations.

Regular expressions use the ``regex`` package, whose matching takes a timeout: a pattern
that backtracks catastrophically on some output costs at most ``REGEX_TIMEOUT_S`` per
evaluation and yields an evaluator error, rather than a cap on the input that would only make
the blow-up rarer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jsonschema
import orjson
import regex

from heliograph.evals.scales import Scale, ScaleError, parse_scale

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", re.ASCII)
MAX_DESCRIPTION = 2000
MAX_STRINGS = 100
MAX_STRING = 10_000
MAX_PATTERN = 2000
MAX_SCHEMA_BYTES = 64 * 1024
REGEX_TIMEOUT_S = 0.25
REGEX_FLAGS = MappingProxyType(
    {"ignore_case": regex.IGNORECASE, "multiline": regex.MULTILINE, "dotall": regex.DOTALL}
)


class SpecError(ValueError):
    """A spec that cannot be saved: ``field`` is where (``config.pattern``), the message why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class EvaluatorSpec:
    """A named evaluator: ``kind`` and its normalised ``config`` (JSON values only)."""

    name: str
    kind: str
    config: Mapping[str, Any]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "config": dict(self.config),
        }


def parse_spec(doc: object) -> EvaluatorSpec:
    """A spec from ``{"name", "kind", "config", "description"?}``; raises SpecError."""
    if not isinstance(doc, Mapping):
        raise SpecError("spec", "must be an object")
    unknown = set(doc) - {"name", "kind", "config", "description"}
    if unknown:
        raise SpecError(str(sorted(map(str, unknown))[0]), "unknown field")
    name = doc.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpecError(
            "name",
            "must be 1 to 100 letters, digits, '_', '.' or '-', starting with one of the first two",
        )
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise SpecError("kind", f"must be one of {', '.join(KINDS)}")
    config = doc.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise SpecError("config", "must be an object")
    description = doc.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise SpecError("description", f"must be a string of at most {MAX_DESCRIPTION} characters")
    return EvaluatorSpec(name, kind, KINDS[kind](Config(config)), description)


class Config:
    """Reads one spec's config, each option once; ``done`` refuses the options left over."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.seen: set[str] = set()

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.doc.get(key)

    def done(self, out: dict[str, Any]) -> dict[str, Any]:
        left = sorted(str(k) for k in self.doc if k not in self.seen)
        if left:
            raise SpecError(f"config.{left[0]}", "unknown option for this kind")
        return out

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SpecError(f"config.{key}", "must be true or false")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.raw(key)
        if value is None:
            return choices[0]
        if value not in choices:
            raise SpecError(f"config.{key}", f"must be one of {', '.join(choices)}")
        return str(value)

    def number(self, key: str, low: float, high: float = math.inf) -> float | None:
        value = self.raw(key)
        if value is None:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not low <= value <= high:
            bound = f"at least {low}" if high == math.inf else f"from {low} to {high}"
            raise SpecError(f"config.{key}", f"must be a number {bound}")
        return float(value)

    def count(self, key: str) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
            raise SpecError(f"config.{key}", "must be a whole number of at least 0")
        return value

    def text(self, key: str, limit: int, *, required: bool = False) -> str | None:
        value = self.raw(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
            raise SpecError(
                f"config.{key}", f"must be a non-empty string of at most {limit} characters"
            )
        return value

    def strings(self, key: str) -> list[str]:
        """A list of strings, or one string standing for a list of one."""
        value = self.raw(key)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not 0 < len(value) <= MAX_STRINGS:
            raise SpecError(f"config.{key}", f"must be a string or a list of 1 to {MAX_STRINGS}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item or len(item) > MAX_STRING:
                raise SpecError(
                    f"config.{key}[{i}]", f"must be a non-empty string of at most {MAX_STRING}"
                )
        return list(value)


def _exact_match(c: Config) -> dict[str, Any]:
    return c.done(
        {
            "case_sensitive": c.flag("case_sensitive", True),
            "normalize_whitespace": c.flag("normalize_whitespace", False),
        }
    )


def _contains(c: Config) -> dict[str, Any]:
    return c.done(
        {
            "values": c.strings("values"),
            "mode": c.choice("mode", ("all", "any")),
            "case_sensitive": c.flag("case_sensitive", True),
        }
    )


def compile_pattern(config: Mapping[str, Any]) -> Any:
    """The compiled regex of a regex config (a ``regex.Pattern``); raises regex.error."""
    flags = 0
    for name in config["flags"]:
        flags |= REGEX_FLAGS[name]
    return regex.compile(config["pattern"], flags)


def _regex(c: Config) -> dict[str, Any]:
    pattern = c.text("pattern", MAX_PATTERN, required=True)
    flags = c.raw("flags") or []
    if not isinstance(flags, list) or any(f not in REGEX_FLAGS for f in flags):
        raise SpecError("config.flags", f"must be a list of {', '.join(REGEX_FLAGS)}")
    out = c.done(
        {
            "pattern": pattern,
            "flags": sorted(set(flags)),
            "match": c.choice("match", ("search", "fullmatch")),
        }
    )
    try:
        compile_pattern(out)
    except regex.error as exc:
        # regex.error's message already ends with "at position N" when it knows where
        raise SpecError("config.pattern", f"does not compile: {exc}") from exc
    return out


def _valid_json(c: Config) -> dict[str, Any]:
    return c.done(
        {
            "type": c.choice("type", ("any", "object", "array")),
            "allow_fence": c.flag("allow_fence", False),
        }
    )


def schema_validator(schema: Any) -> jsonschema.protocols.Validator:
    """A validator for ``schema`` (its ``$schema``'s draft, else 2020-12), formats checked."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _json_schema(c: Config) -> dict[str, Any]:
    schema = c.raw("schema")
    if not isinstance(schema, dict | bool):
        raise SpecError("config.schema", "must be a JSON Schema (an object or a boolean)")
    if len(orjson.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise SpecError("config.schema", f"must be at most {MAX_SCHEMA_BYTES} bytes of JSON")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        if isinstance(schema, dict):  # true and false are schemas with nothing to check
            cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in exc.path)
        raise SpecError(f"config.schema{path}", f"is not a valid schema: {exc.message}") from exc
    return c.done({"schema": schema, "allow_fence": c.flag("allow_fence", False)})


def _length(c: Config) -> dict[str, Any]:
    unit = c.choice("unit", ("characters", "words"))
    low, high = c.count("min"), c.count("max")
    if low is None and high is None:
        raise SpecError("config.min", "min or max (or both) must be given")
    if low is not None and high is not None and low > high:
        raise SpecError("config.max", f"must be at least min ({low})")
    return c.done({"unit": unit, "min": low, "max": high})


def _similarity(c: Config) -> dict[str, Any]:
    return c.done(
        {
            "metric": c.choice("metric", ("ratio", "token_set_ratio")),
            "threshold": c.number("threshold", 0, 1),
            "normalize": c.flag("normalize", True),
        }
    )


def _latency(c: Config) -> dict[str, Any]:
    limit = c.number("max_ms", 0)
    if limit is None:
        raise SpecError("config.max_ms", "is required (a number of milliseconds)")
    return c.done({"max_ms": limit})


def _cost(c: Config) -> dict[str, Any]:
    limit = c.number("max_usd", 0, 1_000_000)
    if limit is None:
        raise SpecError("config.max_usd", "is required (a number of US dollars)")
    return c.done({"max_usd": limit})


def _tool_called(c: Config) -> dict[str, Any]:
    return c.done({"name": c.text("name", 255), "match": c.choice("match", ("exact", "glob"))})


def _llm_judge(c: Config) -> dict[str, Any]:
    prompt = c.text("prompt", 100, required=True)
    label = c.text("label", 100)
    version = c.count("version")
    if (label is None) == (version is None):
        raise SpecError("config.label", "give exactly one of label and version")
    try:
        scale: Scale = parse_scale(c.raw("scale"))
    except ScaleError as exc:
        raise SpecError("config.scale", str(exc)) from exc
    threshold = c.number("threshold", -math.inf)
    if threshold is not None and not scale.numeric:
        raise SpecError("config.threshold", "applies only to a numeric scale")
    if threshold is not None and not scale.low <= threshold <= scale.high:
        raise SpecError("config.threshold", f"must be within the scale ({scale.describe()})")
    return c.done(
        {
            "prompt": prompt,
            "label": label,
            "version": version,
            "model": c.text("model", 255),
            "upstream": c.text("upstream", 64),
            "scale": scale.to_json(),
            "threshold": threshold,
        }
    )


KINDS: Mapping[str, Callable[[Config], dict[str, Any]]] = MappingProxyType(
    {
        "exact_match": _exact_match,
        "contains": _contains,
        "not_contains": _contains,
        "regex": _regex,
        "valid_json": _valid_json,
        "json_schema": _json_schema,
        "length": _length,
        "similarity": _similarity,
        "latency_max_ms": _latency,
        "cost_max_usd": _cost,
        "tool_called": _tool_called,
        "llm_judge": _llm_judge,
    }
)
