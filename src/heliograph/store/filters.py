"""The filter model (a tree of ``Leaf`` and ``Branch``), Helicone's JSON form of it, and its
compilation to one SQL condition on ``requests`` for one organization.

Every way of selecting records ends here: Helicone's ``POST /v1/request/query``, the URL
parameters of the API and the dashboard and the CLI's options (``store.filter_params``), and
Python callers (``store.selection``). So a filter means the same thing everywhere and on both
dialects. Fields, their kinds and columns are declared once in ``store.fields``. Input is
untrusted JSON: it is parsed into the tree first (declared fields and operators, typed values,
bounded size), and only that tree is compiled, with bound parameters only.

Semantics chosen so SQLite and PostgreSQL agree: ``like`` is case-sensitive on both (GLOB on
SQLite), ``ilike`` and ``contains`` are case-insensitive (ASCII case folding on SQLite),
``contains`` escapes ``%`` and ``_``, and the negative operators are the exact complement of
their positive twin (a record with no value *is* "not equal" to anything). Text with a NUL
character is refused when parsed and matches nothing when built directly: PostgreSQL text
cannot hold one and SQLite's LIKE stops at it (``contains`` NUL would match every row).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, String, and_, bindparam, exists, false, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from heliograph.store import fields, times
from heliograph.store.fields import MAX_INT
from heliograph.store.schema import requests

MAX_DEPTH = 32
MAX_LEAVES = 200
MAX_TEXT = 1000
MAX_NAME = 255
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
    field: str  # a name in store.fields
    op: str
    value: str | float | int | bool
    key: str | None = None  # property or score name


@dataclass(frozen=True)
class Branch:
    operator: str  # "and" or "or"
    children: tuple[Filter, ...]


Filter = Leaf | Branch
ALL: Filter = Branch("and", ())


def all_of(*items: Filter) -> Filter:
    kept = tuple(i for i in items if i != ALL)
    return kept[0] if len(kept) == 1 else Branch("and", kept)


def any_of(*items: Filter) -> Filter:
    return items[0] if len(items) == 1 else Branch("or", items)


# ---- Helicone's JSON form -------------------------------------------------------------------


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
    for table, names in node.items():
        path = f"{where}.{table}"
        if table not in TABLES:
            raise FilterError(f"{path}: unknown table; use one of {', '.join(TABLES)}")
        for name, ops in _object(names, path).items():
            if table == "properties":
                yield from _ops("properties", name, ops, f"{path}.{name}")
                continue
            if table in LEGACY:
                if name not in LEGACY[table]:
                    known = ", ".join(LEGACY[table])
                    raise FilterError(f"{path}.{name}: unknown field; use one of {known}")
                name = LEGACY[table][name]
            field = fields.lookup(name)
            prefix, dot, key = name.partition(".")
            keyed = fields.lookup(prefix) if dot else None
            if field is not None and field.kind == "keyed":
                for key, key_ops in _object(ops, f"{path}.{name}").items():
                    yield from _ops(field.name, key, key_ops, f"{path}.{name}.{key}")
            elif field is not None:
                yield from _ops(field.name, None, ops, f"{path}.{name}")
            elif keyed is not None and keyed.kind == "keyed":
                yield from _ops(keyed.name, key, ops, f"{path}.{name}")
            else:
                raise FilterError(f"{path}.{name}: unknown field; use one of {known_fields()}")


def known_fields() -> str:
    return ", ".join(f"{f.name}.<name>" if f.kind == "keyed" else f.name for f in fields.FIELDS)


def _ops(field: str, key: str | None, ops: Any, where: str) -> Iterator[Leaf]:
    for op, value in _object(ops, where).items():
        yield leaf(field, op, value, key, where=f"{where}.{op}")


# ---- one validated condition --------------------------------------------------------------


def leaf(field: str, op: str, value: Any, key: str | None = None, *, where: str = "") -> Leaf:
    """One validated condition; ``value`` is coerced to the field's type and stored units.

    Every front door builds its conditions here, so they are checked the same way."""
    where = where or f"{field}.{op}"
    spec = fields.get(field)
    if key is not None:
        if not key or len(key) > MAX_NAME or "\x00" in key:
            raise FilterError(f"{where}: the name must be 1 to {MAX_NAME} characters, no NUL")
        if field == "properties":
            key = key.lower()  # header names arrive lower-cased, so stored names are too
    if op not in spec.ops:
        raise FilterError(f"{where}: operator not allowed on {field}; use one of {spec.ops}")
    return Leaf(field, op, _coerce(spec, value, where), key)


def _coerce(spec: fields.Field, value: Any, where: str) -> str | float | int | bool:
    kind = spec.value_kind
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
        try:
            return times.parse_time(value, where)
        except times.TimeError as exc:
            raise FilterError(str(exc)) from exc
    if spec.kind == "keyed" and isinstance(value, bool):
        value = int(value)  # scores are stored as numbers, true and false as 1 and 0
    elif spec.kind == "keyed" and isinstance(value, str):
        value = _numeric_string(value, where)  # Helicone's typings send scores as strings
    number = _number(value, where)
    if spec.minimum is not None and number < spec.minimum:
        raise FilterError(f"{where} must be at least {spec.minimum:g}")
    if number > spec.maximum:
        raise FilterError(f"{where} must be at most {spec.maximum:g} {spec.unit}".rstrip())
    return round(number * spec.scale) if spec.scale != 1 else number


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
    spec = fields.get(f.field)
    column = spec.column
    if spec.on_requests:
        positive = _compare(column, op, f.value)
        if spec.known is not None:  # e.g. unknown costs are stored as 0 but match no number
            positive = and_(spec.known.is_(True), positive)
        if not negated:
            return positive
        return or_(column.is_(None), not_(positive))
    table = column.table  # a side table keyed by request_id (feedback, properties, scores)
    where = [_compare(column, op, f.value)]
    if spec.kind == "keyed":
        where.insert(0, table.c.name == f.key)
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
