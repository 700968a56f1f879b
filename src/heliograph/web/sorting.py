"""Sortable tables: the sort order lives in the URL (``?sort=-cost``), so a sorted table can
be shared and survives a reload.

One convention everywhere: the parameter names a column, a leading ``-`` means descending.
A page with several tables gives each its own parameter name. Sorting happens on the rows a
view already holds (breakdowns are at most a few hundred rows); paginated lists sort in SQL
with the same spelling. Missing values (None) sort last in both directions, so "no data"
never tops a table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.datastructures import QueryParams

from heliograph.web.format import query_url

Key = Callable[[Mapping[str, Any]], Any]


class TableSort:
    """One table's sort order, read from the page's query string."""

    def __init__(
        self,
        query: QueryParams,
        path: str,
        columns: Sequence[str] | Mapping[str, Key],
        default: str,
        param: str = "sort",
    ) -> None:
        self.query, self.path, self.param = query, path, param
        self.keys: dict[str, Key] = (
            dict(columns) if isinstance(columns, Mapping) else {c: _getter(c) for c in columns}
        )
        raw = query.get(param, "") or default
        column = raw.lstrip("-")
        if column not in self.keys:
            raw, column = default, default.lstrip("-")
        self.column = column
        self.descending = raw.startswith("-")
        self.default = default

    @property
    def value(self) -> str:
        """This table's current sort, as written in the URL."""
        return ("-" if self.descending else "") + self.column

    def apply(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """``rows`` in this order; rows without a value last, ties in their given order."""
        key = self.keys[self.column]
        present = [r for r in rows if key(r) is not None]
        missing = [r for r in rows if key(r) is None]
        present.sort(key=lambda r: _comparable(key(r)), reverse=self.descending)
        return [*present, *missing]

    def link(self, column: str) -> str:
        """The URL that sorts by ``column``: descending first (biggest on top), then flips."""
        if column == self.column:
            value = column if self.descending else "-" + column
        else:
            value = "-" + column
        params = [(k, v) for k, v in self.query.multi_items() if k not in (self.param, "cursor")]
        if value != self.default:
            params.append((self.param, value))
        return query_url(self.path, params)

    def state(self, column: str) -> str | None:
        """``aria-sort`` for a header cell."""
        if column != self.column:
            return None
        return "descending" if self.descending else "ascending"


def _getter(column: str) -> Key:
    return lambda row: row.get(column)


def _comparable(value: Any) -> Any:
    """Text sorts case-insensitively; numbers as numbers."""
    return value.casefold() if isinstance(value, str) else value
