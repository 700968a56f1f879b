"""What a budget is, checked once: scope, window, limit, action and warning thresholds.

The same checker reads the API's JSON and ``config.toml``'s ``[[budgets]]`` tables, so both
refuse a bad definition with the same message naming the field. A checked definition becomes a
``Budget``: an immutable value whose scope test is a few comparisons and one compiled pattern,
because the gateway runs it for every request of an organization that has budgets.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NUSD_PER_USD = 1_000_000_000
UNITS = {"limit_usd": "usd", "limit_tokens": "tokens", "limit_requests": "requests"}
CALENDAR = ("day", "week", "month")
ACTIONS = ("block", "alert")
MAX_ROLLING_HOURS = 24 * 31
MAX_NAME = 100
MAX_LIMIT = 2**62
SCOPE_FIELDS = ("user_id", "key_id", "property", "model", "upstream")
WINDOW_HELP = "'1h', '24h' or any '<N>h' up to 744h (rolling), or 'day', 'week', 'month'"


class BudgetError(ValueError):
    """A budget definition that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Which requests a budget counts; every given part must match (None matches all)."""

    user_id: str | None = None
    key_id: str | None = None
    property: tuple[str, str] | None = None
    model: str | None = None  # a glob, case-insensitive
    upstream: str | None = None  # a glob over upstream names
    _model_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _upstream_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Scope:
        model, upstream = doc.get("model"), doc.get("upstream")
        prop = doc.get("property")
        return cls(
            user_id=doc.get("user_id"),
            key_id=doc.get("key_id"),
            property=_pair(prop),
            model=model,
            upstream=upstream,
            _model_re=_glob(model),
            _upstream_re=_glob(upstream),
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in SCOPE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = {value[0]: value[1]} if name == "property" else value
        return out

    def matches(self, req: RequestFacts) -> bool:
        if self.user_id is not None and req.user_id != self.user_id:
            return False
        if self.key_id is not None and req.key_id != self.key_id:
            return False
        if self.property is not None and req.properties.get(self.property[0]) != self.property[1]:
            return False
        if self._model_re is not None and not self._model_re.match(req.model or ""):
            return False
        return self._upstream_re is None or bool(self._upstream_re.match(req.upstream))


class RequestFacts(NamedTuple):
    """What a scope is tested against: the request as the record will describe it (made
    for every request a budget may cover: a tuple is the cheapest immutable record)."""

    key_id: str | None
    user_id: str | None
    properties: Mapping[str, str]
    model: str | None
    upstream: str


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    org_id: str
    name: str
    scope: Scope
    window: str  # "<N>h" (rolling) or one of CALENDAR
    timezone: str
    unit: str  # "usd" (limit in nano-USD), "tokens" or "requests"
    limit: int
    action: str  # "block" or "alert"
    thresholds: tuple[int, ...]  # warning percentages
    source: str = "api"  # "api" or "config"

    @property
    def blocks(self) -> bool:
        return self.action == "block"

    @property
    def rolling_s(self) -> int | None:
        """The rolling window's length in seconds; None for a calendar window."""
        return None if self.window in CALENDAR else int(self.window[:-1]) * 3600

    def limit_text(self) -> str:
        """The limit as a person reads it: "$10.00", "50,000 tokens", "100 requests"."""
        return amount_text(self.unit, self.limit)

    def as_dict(self) -> dict[str, Any]:
        """The API's shape (without usage)."""
        limit: dict[str, Any] = {"limit_usd": None, "limit_tokens": None, "limit_requests": None}
        key = next(k for k, v in UNITS.items() if v == self.unit)
        limit[key] = self.limit / NUSD_PER_USD if self.unit == "usd" else self.limit
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope.as_dict(),
            "window": self.window,
            "timezone": self.timezone,
            **limit,
            "action": self.action,
            "thresholds": list(self.thresholds),
            "source": self.source,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Budget:
        scope = row["scope"] or {}
        return cls(
            id=row["id"],
            org_id=row["org_id"],
            name=row["name"],
            scope=Scope.of(scope),
            window=row["window"],
            timezone=row["timezone"],
            unit=row["limit_unit"],
            limit=int(row["limit_amount"]),
            action=row["action"],
            thresholds=tuple(row["thresholds"] or ()),
            source=row["source"],
        )


def config_owned(name: str) -> str:
    """Why a config.toml budget is not changed here; the API and the dashboard say the same."""
    return f"Budget {name!r} is defined in config.toml; change it there."


def duplicate_name(name: str) -> str:
    return f"A budget named {name!r} already exists in this organization."


def unknown_key(key_id: str) -> str:
    return f"scope.key_id: no key with id {key_id!r} in this organization (use its id)"


def amount_text(unit: str, amount: int) -> str:
    if unit == "usd":
        return f"${amount / NUSD_PER_USD:,.2f}"
    return f"{amount:,} {unit}"


def _glob(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE)


def check_budget(doc: object, default_timezone: str = "UTC") -> dict[str, Any]:
    """A budget definition as stored (the columns of ``budgets`` but ids and times), or
    BudgetError naming the field."""
    if not isinstance(doc, Mapping):
        raise BudgetError("a budget is a JSON object")
    unknown = set(doc) - {
        "name", "scope", "window", "timezone", "action", "thresholds", *UNITS,
    }  # fmt: skip
    if unknown:
        raise BudgetError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BudgetError(f"name: a non-empty text of at most {MAX_NAME} characters")
    limits = [k for k in UNITS if doc.get(k) is not None]
    if len(limits) != 1:
        raise BudgetError("give exactly one of limit_usd, limit_tokens, limit_requests")
    unit = UNITS[limits[0]]
    amount = _limit(limits[0], doc[limits[0]], unit)
    window = doc.get("window")
    if not isinstance(window, str) or not _window_ok(window):
        raise BudgetError(f"window: {WINDOW_HELP}")
    timezone = doc.get("timezone", default_timezone)
    if not isinstance(timezone, str) or not _zone_ok(timezone):
        raise BudgetError("timezone: an IANA time zone name such as 'UTC' or 'Europe/Berlin'")
    action = doc.get("action", "block")
    if action not in ACTIONS:
        raise BudgetError("action: 'block' or 'alert'")
    return {
        "name": name.strip(),
        "scope": _scope(doc.get("scope", {})),
        "window": window,
        "timezone": timezone,
        "limit_unit": unit,
        "limit_amount": amount,
        "action": action,
        "thresholds": _thresholds(doc.get("thresholds", [50, 80, 100])),
    }


def _limit(name: str, value: object, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BudgetError(f"{name}: a number >= 0")
    if unit != "usd" and value != int(value):
        raise BudgetError(f"{name}: a whole number")
    scale = NUSD_PER_USD if unit == "usd" else 1
    if not math.isfinite(value) or value * scale > MAX_LIMIT:
        raise BudgetError(f"{name}: too large")
    return round(value * scale) if unit == "usd" else int(value)


def _window_ok(window: str) -> bool:
    if window in CALENDAR:
        return True
    digits = window[:-1]
    return (
        window.endswith("h")
        and digits.isascii()
        and digits.isdigit()
        and 0 < int(digits) <= MAX_ROLLING_HOURS
    )


def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _scope(scope: object) -> dict[str, Any]:
    if not isinstance(scope, Mapping):
        raise BudgetError("scope: an object with any of " + ", ".join(SCOPE_FIELDS))
    unknown = set(scope) - set(SCOPE_FIELDS)
    if unknown:
        allowed = ", ".join(SCOPE_FIELDS)
        raise BudgetError(f"scope: unknown field(s) {', '.join(sorted(unknown))}; use {allowed}")
    out: dict[str, Any] = {}
    for name in ("user_id", "key_id", "model", "upstream"):
        value = scope.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value or len(value) > 255:
            raise BudgetError(f"scope.{name}: a non-empty text of at most 255 characters")
        out[name] = value
    prop = scope.get("property")
    if prop is not None:
        ok = isinstance(prop, Mapping) and len(prop) == 1
        if ok:
            key, value = next(iter(prop.items()))
            ok = isinstance(key, str) and bool(key) and isinstance(value, str)
        if not ok:
            raise BudgetError('scope.property: one {"name": "value"} pair')
        out["property"] = dict(prop)
    return out


def _thresholds(value: object) -> list[int]:
    if not isinstance(value, list) or len(value) > 10:
        raise BudgetError("thresholds: a list of at most 10 percentages")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= 1000:
            raise BudgetError("thresholds: whole percentages between 1 and 1000")
        out.append(item)
    return sorted(set(out))


def _pair(prop: object) -> tuple[str, str] | None:
    if not isinstance(prop, Mapping) or not prop:
        return None
    name, value = next(iter(prop.items()))
    return str(name), str(value)
