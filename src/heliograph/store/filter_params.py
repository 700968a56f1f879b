"""The URL form of a filter: ``name=value`` parameters, read the same by every door.

``GET /api/v1/requests`` and its export, the dashboard's Requests page (and its live feed and
exports) and the CLI's ``export``/``tail`` options all hand their parameters to ``parse``,
which turns each into a ``Leaf`` of the one filter tree through ``filters.leaf``. The
spellings come from ``store.fields`` (see its docstring); ``filter=`` adds a Helicone tree as
JSON. Empty values are no condition, as an empty form field means "any".
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from heliograph.store import fields, filters
from heliograph.store.filters import Filter, FilterError

TREE = "filter"
TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")
SPELLINGS: dict[str, tuple[fields.Field, str]] = {
    param: (field, op) for param, field, op in fields.url_params() if field.kind != "keyed"
}


def names() -> list[str]:
    """Every filter parameter as documented (keyed ones as ``property.<name>``), and filter."""
    return [param for param, _, _ in fields.url_params()] + [TREE]


def is_filter_param(name: str) -> bool:
    """Whether ``name`` is one of the filter spellings (including ``property.<name>``)."""
    if name in SPELLINGS or name == TREE:
        return True
    prefix, dot, key = name.partition(".")
    return bool(dot and key) and prefix in fields.KEYED


def parse_one(name: str, value: str) -> Filter:
    """The condition of one parameter; FilterError naming ``name`` if its value is wrong."""
    if name == TREE:
        return parse_tree(value)
    if name in SPELLINGS:
        field, op = SPELLINGS[name]
        return filters.leaf(field.name, op, _value(field.value_kind, value, name), where=name)
    prefix, _, key = name.partition(".")
    field = fields.KEYED[prefix]
    return filters.leaf(field.name, "equals", _value(field.values, value, name), key, where=name)


def parse(pairs: Iterable[tuple[str, str]], errors: list[str] | None = None) -> Filter:
    """All filter parameters among ``pairs`` ANDed (others are the caller's to check).

    The first bad value raises FilterError, or, given ``errors``, is reported there and
    skipped (the dashboard shows such notes and the rest of the filter still applies).
    """
    items: list[Filter] = []
    for name, value in pairs:
        if not value or not is_filter_param(name):
            continue
        try:
            items.append(parse_one(name, value))
        except FilterError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return filters.all_of(*items)


def parse_tree(raw: str) -> Filter:
    """A Helicone tree given as JSON text (or "all")."""
    if raw.strip() == "all":
        return filters.ALL
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FilterError("filter must be JSON") from exc
    return filters.parse(doc)


def _value(kind: str, text: str, name: str) -> str | float | bool:
    """A parameter's text as the JSON value a tree would hold for the field's kind."""
    if kind in ("text", "time"):
        return text
    lowered = text.strip().lower()
    if kind == "bool":
        if lowered in TRUE or lowered in FALSE:
            return lowered in TRUE
        raise FilterError(f"{name} must be true or false")
    try:
        number = float(lowered)
    except ValueError as exc:
        raise FilterError(f"{name} must be a number") from exc
    return int(number) if number.is_integer() else number
