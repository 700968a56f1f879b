"""Helicone's filter tree compiled to one SQL condition on ``requests``, for one organization.

Every way of selecting records (``POST /v1/request/query``, the ``GET /api/v1/requests``
parameters, export, the dashboard) goes through this module, so a filter means the same thing
everywhere and on both dialects. Input is untrusted JSON: it is parsed into a small tree of
``Leaf`` and ``Branch`` first (whitelisted fields and operators, typed values, bounded size),
and only that tree is compiled, with bound parameters only.

Semantics chosen so SQLite and PostgreSQL agree: ``like`` is case-sensitive on both (GLOB on
SQLite), ``ilike`` and ``contains`` are case-insensitive (ASCII case folding on SQLite),
``contains`` escapes ``%`` and ``_``, and the negative operators are the exact complement of
their positive twin (a record with no value *is* "not equal" to anything). Text with a NUL
character is refused when parsed and matches nothing when built directly: PostgreSQL text
cannot hold one and SQLite's LIKE stops at it (``contains`` NUL would match every row).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, String, and_, bindparam, exists, false, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from heliograph.store.schema import request_feedback, request_properties, request_scores, requests

if TYPE_CHECKING:
    from heliograph.store.requests import RequestFilter

MAX_DEPTH = 32
MAX_LEAVES = 200
MAX_TEXT = 1000
MAX_NAME = 255
MAX_INT = 2**53
MIN_TIME_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_USD = 1e9
TEXT_OPS = ("equals", "not-equals", "like", "ilike", "contains", "not-contains")
NUMBER_OPS = ("equals", "not-equals", "gte", "lte", "gt", "lt")
BOOL_OPS = ("equals", "not-equals")
OPS = {"text": TEXT_OPS, "number": NUMBER_OPS, "time": NUMBER_OPS, "bool": BOOL_OPS}

# Field name -> (kind, column). ``cost`` is USD in filters and nano-USD in the store.
COLUMNS: dict[str, tuple[str, Any]] = {
    "model": ("text", requests.c.model),
    "response_model": ("text", requests.c.response_model),
    "user_id": ("text", requests.c.user_id),
    "provider": ("text", requests.c.provider),
    "session_id": ("text", requests.c.session_id),
    "request_id": ("text", requests.c.id),
    "state": ("text", requests.c.state),
    "endpoint": ("text", requests.c.endpoint),
    "kind": ("text", requests.c.kind),
    "upstream": ("text", requests.c.upstream),
    "status": ("number", requests.c.status),
    "latency": ("number", requests.c.latency_ms),
    "time_to_first_token": ("number", requests.c.ttft_ms),
    "cost": ("number", requests.c.cost_nusd),
    "prompt_tokens": ("number", requests.c.prompt_tokens),
    "completion_tokens": ("number", requests.c.completion_tokens),
    "total_tokens": ("number", requests.c.total_tokens),
    "prompt_cache_read_tokens": ("number", requests.c.cached_tokens),
    "prompt_cache_write_tokens": ("number", requests.c.cache_write_tokens),
    "session_path": ("text", requests.c.session_path),
    "session_name": ("text", requests.c.session_name),
    "served_by": ("text", requests.c.served_by),
    "model_override": ("text", requests.c.model_override),
    "retries": ("number", requests.c.retries),
    "created_at": ("time", requests.c.created_at),
    "cache_hit": ("bool", requests.c.cache_hit),
}
# Keyed fields: the key is a property or score name.
KEYED = {"properties": "text", "scores": "number"}
SPECIAL = {"feedback": "bool"}
ALIASES = {
    "request_created_at": "created_at",
    "latency_ms": "latency",
    "ttft_ms": "time_to_first_token",
    "id": "request_id",
    "helicone-score-feedback": "feedback",
    "cached": "cache_hit",
}
# Helicone's legacy per-table leaves, where a field maps clearly onto ours.
LEGACY = {
    "request": {
        "created_at": "created_at",
        "user_id": "user_id",
        "id": "request_id",
        "model": "model",
        "path": "endpoint",
    },
    "response": {"status": "status", "body_model": "response_model", "body_tokens": "total_tokens"},
    "feedback": {"rating": "feedback"},
}
TABLES = ("request_response_rmt", *LEGACY, "properties")


class FilterError(ValueError):
    """A filter that cannot be compiled; the message is safe to show to the caller."""


@dataclass(frozen=True)
class Leaf:
    field: str  # a key of COLUMNS, or "properties", "scores", "feedback"
    op: str
    value: str | float | int | bool
    key: str | None = None  # property or score name


@dataclass(frozen=True)
class Branch:
    operator: str  # "and" or "or"
    children: tuple[Filter, ...]


Filter = Leaf | Branch
ALL: Filter = Branch("and", ())


def field_kind(field: str) -> str:
    if field in COLUMNS:
        return COLUMNS[field][0]
    return KEYED.get(field) or SPECIAL[field]


def all_of(*items: Filter) -> Filter:
    kept = tuple(i for i in items if i != ALL)
    return kept[0] if len(kept) == 1 else Branch("and", kept)


# ---- parsing ----------------------------------------------------------------------------


def parse(tree: Any) -> Filter:
    """Validate untrusted JSON into a filter; raises FilterError with a precise message."""
    counter = [0]
    return _node(tree, 0, counter, "filter")


def _node(node: Any, depth: int, counter: list[int], where: str) -> Filter:
    if depth > MAX_DEPTH:
        raise FilterError(f"filter is nested deeper than {MAX_DEPTH} levels")
    if node == "all" or (node == {} and depth == 0):  # Helicone treats an empty filter as all
        return ALL
    if not isinstance(node, dict) or not node:
        raise FilterError(f'{where} must be "all", a leaf object or a {{left, operator, right}}')
    if "operator" in node or "left" in node or "right" in node:
        if set(node) != {"left", "operator", "right"}:
            raise FilterError(f"{where}: a branch has exactly the keys left, operator and right")
        operator = node["operator"]
        if operator not in ("and", "or"):
            raise FilterError(f'{where}.operator must be "and" or "or"')
        left = _node(node["left"], depth + 1, counter, f"{where}.left")
        right = _node(node["right"], depth + 1, counter, f"{where}.right")
        return Branch(operator, (left, right))
    leaves = list(_leaves(node, where))
    counter[0] += len(leaves)
    if counter[0] > MAX_LEAVES:
        raise FilterError(f"filter has more than {MAX_LEAVES} conditions")
    return leaves[0] if len(leaves) == 1 else Branch("and", tuple(leaves))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise FilterError(f"{where} must be a non-empty object")
    return value


def _leaves(node: dict[str, Any], where: str) -> Iterator[Leaf]:
    """All conditions of one leaf object (several fields or operators are ANDed)."""
    for table, fields in node.items():
        path = f"{where}.{table}"
        if table not in TABLES:
            raise FilterError(f"{path}: unknown table; use one of {', '.join(TABLES)}")
        for name, ops in _object(fields, path).items():
            if table == "properties":
                yield from _ops("properties", name, ops, f"{path}.{name}")
                continue
            if table in LEGACY:
                if name not in LEGACY[table]:
                    known = ", ".join(LEGACY[table])
                    raise FilterError(f"{path}.{name}: unknown field; use one of {known}")
                field = LEGACY[table][name]
            else:
                field = ALIASES.get(name, name)
            if field in KEYED and "." not in name:
                for key, key_ops in _object(ops, f"{path}.{name}").items():
                    yield from _ops(field, key, key_ops, f"{path}.{name}.{key}")
                continue
            prefix, dot, key = field.partition(".")
            if dot and prefix in KEYED:
                yield from _ops(prefix, key, ops, f"{path}.{name}")
            elif field in COLUMNS or field in SPECIAL:
                yield from _ops(field, None, ops, f"{path}.{name}")
            else:
                raise FilterError(f"{path}.{name}: unknown field; use one of {known_fields()}")


def known_fields() -> str:
    return ", ".join([*COLUMNS, *SPECIAL, "properties.<name>", "scores.<name>"])


def _ops(field: str, key: str | None, ops: Any, where: str) -> Iterator[Leaf]:
    if key is not None:
        if not key or len(key) > MAX_NAME or "\x00" in key:
            raise FilterError(f"{where}: the name must be 1 to {MAX_NAME} characters, no NUL")
        if field == "properties":
            key = key.lower()  # header names arrive lower-cased, so stored names are too
    for op, value in _object(ops, where).items():
        yield leaf(field, op, value, key, where=f"{where}.{op}")


def leaf(field: str, op: str, value: Any, key: str | None = None, *, where: str = "") -> Leaf:
    """One validated condition; ``value`` is coerced to the field's type."""
    where = where or f"{field}.{op}"
    kind = field_kind(field)
    if op not in OPS[kind]:
        raise FilterError(f"{where}: operator not allowed on {field}; use one of {OPS[kind]}")
    return Leaf(field, op, _coerce(kind, field, value, where), key)


def _coerce(kind: str, field: str, value: Any, where: str) -> str | float | int | bool:
    if kind == "text":
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise FilterError(f"{where} must be a string of at most {MAX_TEXT} characters")
        if "\x00" in value:
            raise FilterError(f"{where} must not contain NUL characters")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise FilterError(f"{where} must be true or false")
        return value
    if kind == "time":
        return to_epoch_ms(value, where)
    if field == "scores" and isinstance(value, bool):
        value = int(value)  # scores are stored as numbers, true and false as 1 and 0
    elif field == "scores" and isinstance(value, str):
        value = _numeric_string(value, where)  # Helicone's typings send scores as strings
    number = _number(value, where)
    if field == "cost":
        if abs(number) > MAX_USD:
            raise FilterError(f"{where} must be at most {MAX_USD:g} USD")
        return round(number * 1e9)
    return number


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FilterError(f"{where} must be a number")
    if not math.isfinite(value) or abs(value) >= MAX_INT:
        raise FilterError(f"{where} is out of range")
    return value


def _numeric_string(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError as exc:
        raise FilterError(f"{where} must be a number") from exc


def to_epoch_ms(value: Any, where: str) -> int:
    """Milliseconds since the epoch from ISO 8601 or a number (seconds, or ms if > 1e11).

    Only years 1 to 9999 (UTC) are accepted, so every result can be shown as a date again.
    """
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    else:
        raise FilterError(f"{where} must be an ISO 8601 string or epoch seconds")
    if number is not None:
        if not math.isfinite(number):
            raise FilterError(f"{where} is out of range")
        ms = int(number if abs(number) > 1e11 else number * 1000)
    else:
        text = str(value).strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise FilterError(f"{where} must be ISO 8601 or epoch seconds") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        try:
            ms = int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError) as exc:
            raise FilterError(f"{where} is out of range (years 1 to 9999)") from exc
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise FilterError(f"{where} is out of range (years 1 to 9999)")
    return ms


def from_request_filter(f: RequestFilter) -> Filter:
    """The ``GET /api/v1/requests`` parameters (a ``RequestFilter``) as a filter tree."""
    items: list[Filter] = []
    for name in ("model", "provider", "user_id", "session_id", "state", "kind", "status"):
        value = getattr(f, name)
        if value is not None:
            items.append(Leaf(name, "equals", value))
    if f.since_ms is not None:
        items.append(Leaf("created_at", "gte", f.since_ms))
    if f.until_ms is not None:
        items.append(Leaf("created_at", "lt", f.until_ms))
    for name, value in f.properties.items():
        items.append(Leaf("properties", "equals", value, name))
    if f.where is not None:
        items.append(f.where)
    return all_of(*items)


# ---- compiling --------------------------------------------------------------------------


def condition(org_id: str | None, f: Filter) -> ColumnElement[bool]:
    """The SQL condition for ``f``; restricted to ``org_id`` unless it is None (operators)."""
    body = _compile(f, org_id)
    return body if org_id is None else and_(requests.c.org_id == org_id, body)


def _compile(f: Filter, org_id: str | None) -> ColumnElement[bool]:
    if isinstance(f, Branch):
        parts = [_compile(c, org_id) for c in f.children]
        if not parts:
            return true() if f.operator == "and" else false()
        return and_(*parts) if f.operator == "and" else or_(*parts)
    negated = f.op in ("not-equals", "not-contains")
    if _has_nul(f):  # no stored text holds a NUL (see the module docstring)
        return true() if negated else false()
    op = {"not-equals": "equals", "not-contains": "contains"}.get(f.op, f.op)
    if f.field in COLUMNS:
        column = COLUMNS[f.field][1]
        positive = _compare(column, op, f.value)
        if f.field == "cost":  # unknown costs are stored as 0 but must never match a number
            positive = and_(requests.c.cost_known.is_(True), positive)
        if not negated:
            return positive
        return or_(column.is_(None), not_(positive))
    if f.field == "feedback":
        table: Any = request_feedback
        where: list[ColumnElement[bool]] = [request_feedback.c.rating.is_(bool(f.value))]
    else:
        table = request_properties if f.field == "properties" else request_scores
        where = [table.c.name == f.key, _compare(table.c.value, op, f.value)]
    org = [] if org_id is None else [table.c.org_id == org_id]
    found = exists().where(table.c.request_id == requests.c.id, *org, *where)
    return not_(found) if negated else found


def holds_nul(*values: object) -> bool:
    """Whether any of ``values`` is text with a NUL, which no stored text holds (and which
    PostgreSQL refuses even as a query parameter): lookups by it find nothing."""
    return any(isinstance(v, str) and "\x00" in v for v in values)


def _has_nul(f: Leaf) -> bool:
    return holds_nul(f.value, f.key)


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "equals":
        if isinstance(value, bool):
            return column.is_(value)  # type: ignore[no-any-return]
        return column == value  # type: ignore[no-any-return]
    if op == "contains":
        return column.icontains(value, autoescape=True)  # type: ignore[no-any-return]
    if op == "ilike":
        return column.ilike(value, escape="\\")  # type: ignore[no-any-return]
    if op == "like":
        return CaseSensitiveLike(column, value)
    return {  # type: ignore[no-any-return]
        "gte": column >= value,
        "lte": column <= value,
        "gt": column > value,
        "lt": column < value,
    }[op]


class CaseSensitiveLike(ColumnElement[bool]):
    """``LIKE`` with ``\\`` as escape, case-sensitive on both dialects.

    PostgreSQL's LIKE already is; SQLite's folds ASCII case, so there it renders as GLOB with
    the pattern translated. Both patterns are bound parameters of the statement, so compiled
    statements stay cacheable.
    """

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_clauseelement),
        ("glob", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: Any, pattern: str) -> None:
        self.column = column
        self.pattern = bindparam(None, pattern, String())
        self.glob = bindparam(None, like_to_glob(pattern), String())


@compiles(CaseSensitiveLike)
def _like_default(element: CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.like(element.pattern, escape="\\"), **kw)


@compiles(CaseSensitiveLike, "sqlite")
def _like_sqlite(element: CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.op("GLOB")(element.glob), **kw)


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, ``\\`` escape) as the equivalent GLOB pattern."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            ch = next(chars, "\\")
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        else:
            out.append(f"[{ch}]" if ch in "*?[" else ch)
    return "".join(out)
