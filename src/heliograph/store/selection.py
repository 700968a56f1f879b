"""``RequestFilter``: the records a list, search, export or tail selects.

Front doors put the one filter tree in ``where`` (built by ``store.filter_params`` or
``filters.parse``); ``text`` is the free-text search in bodies that ``store.search`` applies
after SQL. The other attributes are a shorthand for Python callers: each becomes leaves of the
same tree in ``tree()``, so every condition reaches SQL through ``filters.condition``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.sql import ColumnElement

from heliograph.store import filters
from heliograph.store.filters import Filter, Leaf

EQUALS = ("model", "provider", "user_id", "session_id", "state", "kind", "status")
FAILED_STATES = ("error", "interrupted")


def failed() -> Filter:
    """Requests that failed: the dashboard's "errors only"."""
    return filters.any_of(*(Leaf("state", "equals", s) for s in FAILED_STATES))


def status_class(digit: int) -> Filter:
    """Statuses ``digit``00 to ``digit``99 (4 means 4xx)."""
    low, high = Leaf("status", "gte", digit * 100), Leaf("status", "lt", (digit + 1) * 100)
    return filters.Branch("and", (low, high))


@dataclass
class RequestFilter:
    """A selection of records; see the module docstring."""

    model: str | None = None
    provider: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    status: int | None = None
    state: str | None = None
    kind: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    properties: dict[str, str] = field(default_factory=dict)
    errors_only: bool = False
    status_class: int | None = None  # 4 means 400-499
    min_cost_nusd: int | None = None
    max_cost_nusd: int | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    text: str | None = None  # in prompts and outputs; applied by store.search, not SQL
    where: Filter | None = None  # the filter tree, ANDed with everything above

    def tree(self) -> Filter:
        """Everything but ``text`` as one filter tree."""
        items: list[Filter] = []
        for name in EQUALS:
            value = getattr(self, name)
            if value is not None:
                items.append(Leaf(name, "equals", value))
        bounds = (
            ("created_at", "gte", self.since_ms),
            ("created_at", "lt", self.until_ms),
            ("cost", "gte", self.min_cost_nusd),
            ("cost", "lte", self.max_cost_nusd),
            ("latency", "gte", self.min_latency_ms),
            ("latency", "lte", self.max_latency_ms),
        )
        items += [Leaf(name, op, value) for name, op, value in bounds if value is not None]
        items += [Leaf("properties", "equals", v, k) for k, v in self.properties.items()]
        if self.errors_only:
            items.append(failed())
        if self.status_class is not None:
            items.append(status_class(self.status_class))
        if self.where is not None:
            items.append(self.where)
        return filters.all_of(*items)

    def condition(self, org_id: str | None) -> ColumnElement[bool]:
        """The SQL condition (all but ``text``) for ``org_id`` (None: every organization)."""
        return filters.condition(org_id, self.tree())
