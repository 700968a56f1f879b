"""Every filterable record field, declared once: its name, kind, column and spellings.

A field declared here is filterable everywhere with no other change: Helicone filter trees
(``POST /v1/request/query``, ``filter=``), the URL parameters of ``GET /api/v1/requests``,
export and the dashboard's Requests page, the CLI's ``export`` and ``tail`` options, and the
OpenAPI document and README table generated from this list. The name is the field's one
spelling in all of them; Helicone's other names for it (``aliases``) are accepted in trees only.

URL spellings, derived from the kind: text and bool fields ``<name>=<value>``; number fields
``<name>=``, ``min_<name>=`` and ``max_<name>=`` (inclusive); the time field ``since=`` and
``until=`` (``[since, until)``); keyed fields ``<param>.<key>=<value>``. On the command line
the same names take ``--`` and dashes (``--user-id``, ``--min-latency``, ``--property k=v``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from heliograph.store.schema import (
    request_feedback,
    request_groups,
    request_properties,
    request_scores,
    requests,
)

TEXT_OPS = ("equals", "not-equals", "like", "ilike", "contains", "not-contains")
NUMBER_OPS = ("equals", "not-equals", "gte", "lte", "gt", "lt")
BOOL_OPS = ("equals", "not-equals")
OPS = {"text": TEXT_OPS, "number": NUMBER_OPS, "time": NUMBER_OPS, "bool": BOOL_OPS}
KINDS = ("text", "number", "time", "bool", "keyed")
MAX_INT = 2**53


@dataclass(frozen=True)
class Field:
    """One filterable field. ``column`` is on ``requests``, or the value column of a side table
    keyed by ``request_id`` (feedback, and the keyed fields' name/value tables)."""

    name: str
    kind: str  # one of KINDS
    column: Any
    doc: str  # a phrase, no final period: "Latency in ms"
    values: str = ""  # keyed fields: the kind of their values, "text" or "number"
    param: str = ""  # keyed fields: the URL prefix, as in property.<key>=
    aliases: tuple[str, ...] = ()  # Helicone's other names, accepted in filter trees
    bounds: tuple[str, str] = ("", "")  # URL names of a range's bounds (default min_/max_)
    known: Any = None  # a boolean column that must be true for any value to match
    scale: int = 1  # stored units per filter unit (cost: nano-USD per USD)
    unit: str = ""
    minimum: float | None = None
    maximum: float = MAX_INT - 1

    def __post_init__(self) -> None:
        keyed = self.kind == "keyed"
        if self.kind not in KINDS or keyed != bool(self.values and self.param):
            raise ValueError(f"field {self.name}: a kind of {KINDS}; keyed needs values and param")
        if self.kind == "time" and not all(self.bounds):
            raise ValueError(f"field {self.name}: a time field names its bounds")

    @property
    def value_kind(self) -> str:
        """The kind of the values compared: ``values`` for keyed fields, else ``kind``."""
        return self.values or self.kind

    @property
    def ops(self) -> tuple[str, ...]:
        return OPS[self.value_kind]

    @property
    def on_requests(self) -> bool:
        return self.column.table is requests

    def params(self) -> list[tuple[str, str]]:
        """The URL spellings of this field and the operator each means."""
        if self.kind == "keyed":
            return [(f"{self.param}.<name>", "equals")]
        if self.kind == "time":
            return [(self.bounds[0], "gte"), (self.bounds[1], "lt")]
        if self.kind == "number":
            low, high = self.bounds if self.bounds[0] else (f"min_{self.name}", f"max_{self.name}")
            return [(self.name, "equals"), (low, "gte"), (high, "lte")]
        return [(self.name, "equals")]


def _text(name: str, column: Any, doc: str, *aliases: str) -> Field:
    return Field(name, "text", column, doc, aliases=aliases)


def _count(name: str, column: Any, doc: str) -> Field:
    return Field(name, "number", column, doc, minimum=0)


FIELDS: tuple[Field, ...] = (
    _text("model", requests.c.model, "Model requested"),
    _text("response_model", requests.c.response_model, "Model the upstream says answered"),
    _text("provider", requests.c.provider, "Provider (wire protocol family), e.g. openai"),
    _text("upstream", requests.c.upstream, "Upstream name the request went to"),
    _text(
        "user_id", requests.c.user_id, "User (Helicone-User-Id, the body's user, or Open WebUI's)"
    ),
    _text("user_name", requests.c.user_name, "User's name, as Open WebUI sent it"),
    _text("user_email", requests.c.user_email, "User's email, as Open WebUI sent it"),
    _text("user_role", requests.c.user_role, "User's Open WebUI role (admin, user, pending)"),
    _text("user_group", request_groups.c.name, "A group the user was in (Open WebUI groups)"),
    _text(
        "identity",
        requests.c.identity,
        "Where the user's attributes came from: jwt, headers or unverified",
    ),
    _text(
        "task",
        requests.c.task,
        "Open WebUI background task, e.g. title_generation (chats have none)",
    ),
    _text("message_id", requests.c.message_id, "Open WebUI message: the requests of one answer"),
    _text("prompt_name", requests.c.prompt_name, "Managed prompt the request body named"),
    Field(
        "prompt_version",
        "number",
        requests.c.prompt_version,
        "Version of the managed prompt that was rendered",
        minimum=1,
        maximum=2**31 - 1,
    ),
    _text(
        "prompt_label",
        requests.c.prompt_label,
        "Label the prompt version was found by, e.g. production (none for a version number)",
    ),
    _text("trace_id", requests.c.trace_id, "W3C trace id (32 hex digits) the request belongs to"),
    _text("span_id", requests.c.span_id, "The record's own span id (16 hex digits)"),
    _text(
        "parent_span_id",
        requests.c.parent_span_id,
        "Span the request was made under: the client's traceparent, or the ingested parent",
    ),
    _text(
        "source",
        requests.c.source,
        "How the record arrived: gateway, otlp (ingested) or helicone (imported)",
    ),
    _text(
        "session_id", requests.c.session_id, "Session (Helicone-Session-Id, or Open WebUI's chat)"
    ),
    _text("session_path", requests.c.session_path, "Session path (Helicone-Session-Path)"),
    _text("session_name", requests.c.session_name, "Session name (Helicone-Session-Name)"),
    _text("request_id", requests.c.id, "Record id", "id"),
    _text("state", requests.c.state, "ok, error, cancelled, interrupted or refused (by a budget)"),
    _text("kind", requests.c.kind, "llm, or other for calls that are not model calls"),
    _text("endpoint", requests.c.endpoint, "Upstream path, e.g. /v1/chat/completions"),
    _text("served_by", requests.c.served_by, "Upstream that answered after a fallback"),
    _text("model_override", requests.c.model_override, "Model named by Helicone-Model-Override"),
    _text(
        "budget_note",
        requests.c.budget_note,
        "Budgets that let the request through unpriced or unchecked",
    ),
    Field("status", "number", requests.c.status, "HTTP status", minimum=0, maximum=999),
    Field(
        "latency",
        "number",
        requests.c.latency_ms,
        "Latency in ms",
        aliases=("latency_ms",),
        unit="ms",
        minimum=0,
    ),
    Field(
        "time_to_first_token",
        "number",
        requests.c.ttft_ms,
        "Time to first token in ms",
        aliases=("ttft_ms",),
        unit="ms",
        minimum=0,
    ),
    Field(
        "cost",
        "number",
        requests.c.cost_nusd,
        "Cost in USD; records of unknown cost never match",
        known=requests.c.cost_known,
        scale=10**9,
        unit="USD",
        minimum=0,
        maximum=1e9,
    ),
    _count("prompt_tokens", requests.c.prompt_tokens, "Prompt (input) tokens"),
    _count("completion_tokens", requests.c.completion_tokens, "Completion (output) tokens"),
    _count("total_tokens", requests.c.total_tokens, "Total tokens"),
    _count("prompt_cache_read_tokens", requests.c.cached_tokens, "Prompt tokens read from a cache"),
    _count(
        "prompt_cache_write_tokens",
        requests.c.cache_write_tokens,
        "Prompt tokens written to a cache",
    ),
    _count("retries", requests.c.retries, "Retries the gateway made"),
    Field(
        "created_at",
        "time",
        requests.c.created_at,
        "When the request arrived (since inclusive, until exclusive)",
        aliases=("request_created_at",),
        bounds=("since", "until"),
    ),
    Field(
        "cache_hit", "bool", requests.c.cache_hit, "Answered from the cache", aliases=("cached",)
    ),
    Field(
        "feedback",
        "bool",
        request_feedback.c.rating,
        "The rating: true for good, false for bad",
        aliases=("helicone-score-feedback",),
    ),
    Field(
        "properties",
        "keyed",
        request_properties.c.value,
        "A custom property (a Helicone-Property-* header); names are lower-case",
        values="text",
        param="property",
    ),
    Field(
        "scores",
        "keyed",
        request_scores.c.value,
        "A named score (booleans are stored as 1 and 0)",
        values="number",
        param="score",
    ),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
ALIASES: dict[str, str] = {a: f.name for f in FIELDS for a in f.aliases}
KEYED: dict[str, Field] = {f.param: f for f in FIELDS if f.kind == "keyed"}


def get(name: str) -> Field:
    """The field called ``name`` (its own name, not an alias); KeyError otherwise."""
    return BY_NAME[name]


def lookup(name: str) -> Field | None:
    """The field a filter tree means by ``name`` (own name or Helicone alias), if any."""
    return BY_NAME.get(ALIASES.get(name, name))


def url_params() -> Iterator[tuple[str, Field, str]]:
    """Every URL spelling as (parameter, field, operator), keyed fields as ``param.<name>``."""
    for field in FIELDS:
        for param, op in field.params():
            yield param, field, op


def describe(field: Field, op: str) -> str:
    """What one spelling selects, as a sentence (OpenAPI, CLI help)."""
    if field.kind == "time":
        when = "at or after" if op == "gte" else "before"
        return f"Created {when} this time: ISO 8601 (UTC when no zone is given) or epoch seconds"
    lead = {"gte": "At least: ", "lte": "At most: "}.get(op, "")
    return f"{lead}{field.doc}" + ("; repeatable" if field.kind == "keyed" else "")


def markdown() -> str:
    """The README's table of filterable fields (a test keeps it in step)."""
    lines = ["| Field | Kind | URL parameters | CLI options | What |", "|---|---|---|---|---|"]
    for field in FIELDS:
        params = [p for p, _ in field.params()]
        kind = f"keyed {field.values}" if field.kind == "keyed" else field.kind
        if field.unit:
            kind += f" ({field.unit})"
        shown = ", ".join(f"`{p}=`" for p in params)
        options = ", ".join(f"`{cli_option(p)}`" for p in params)
        lines.append(f"| `{field.name}` | {kind} | {shown} | {options} | {field.doc} |")
    return "\n".join(lines) + "\n"


def cli_option(param: str) -> str:
    """The command-line option of a URL spelling: ``min_latency`` -> ``--min-latency``."""
    if param.endswith(".<name>"):
        return f"--{param.split('.', 1)[0]} NAME=VALUE"
    return "--" + param.replace("_", "-")
