"""The budget form of ``/settings/budgets``, and a budget told in words for its table.

The form is turned into the budgets API's body and checked by the same ``check_budget``, so
the page refuses what the API refuses with the same message. Only what a form alone can get
wrong (an amount or a percentage that is not a number) is caught here, worded like the
checker's message for that field. A stored budget goes back into the same fields to edit it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from heliograph.budgets.rules import CALENDAR, NUSD_PER_USD, UNITS, Budget, BudgetError
from heliograph.web import format as fmt

WINDOWS = ("1h", "24h", "day", "week", "month")
HOURS = "hours"  # the window choice whose length is typed: "<N>h"
LIMIT_KINDS = {unit: name for name, unit in UNITS.items()}  # "usd" -> "limit_usd"
KIND_LABELS = {"usd": "USD", "tokens": "tokens", "requests": "requests"}
DEFAULT_THRESHOLDS = "50, 80, 100"
THOUSANDS = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")
FIELDS = (
    "name", "user_id", "key_id", "property_name", "property_value", "model", "upstream",
    "window", "window_hours", "timezone", "limit_kind", "limit_amount", "action", "thresholds",
)  # fmt: skip


def _number(text: str, field: str) -> int | float:
    text = text.strip().lstrip("$").replace("_", "").strip()
    if THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise BudgetError(f"{field}: a number >= 0") from None


def _thresholds(text: str) -> list[int]:
    out = []
    for part in re.split(r"[,\s]+", text.strip()):
        part = part.removesuffix("%")
        if not part:
            continue
        if not part.isascii() or not part.isdigit():
            raise BudgetError("thresholds: whole percentages between 1 and 1000")
        out.append(int(part))
    return out


def _scope(form: Mapping[str, str]) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    for name in ("user_id", "key_id", "model", "upstream"):
        value = form.get(name, "").strip()
        if value:
            scope[name] = value
    prop, value = form.get("property_name", "").strip(), form.get("property_value", "").strip()
    if prop or value:
        if not prop:
            raise BudgetError('scope.property: one {"name": "value"} pair (give its name)')
        scope["property"] = {prop: value}
    return scope


def form_doc(form: Mapping[str, str]) -> dict[str, Any]:
    """The form as the budgets API's body (``check_budget`` judges it)."""
    window = form.get("window", "")
    if window == HOURS:
        window = form.get("window_hours", "").strip().removesuffix("h") + "h"
    doc: dict[str, Any] = {
        "name": form.get("name", ""),
        "scope": _scope(form),
        "window": window,
        "action": form.get("action", ""),
        "thresholds": _thresholds(form.get("thresholds", "")),
    }
    if form.get("timezone", "").strip():
        doc["timezone"] = form["timezone"].strip()
    limit = LIMIT_KINDS.get(form.get("limit_kind", ""))
    if limit is None:
        raise BudgetError("give exactly one of limit_usd, limit_tokens, limit_requests")
    doc[limit] = _number(form.get("limit_amount", ""), limit)
    return doc


def blank_form(timezone: str) -> dict[str, str]:
    """The create form's starting values."""
    return {
        "window": "month",
        "timezone": timezone,
        "limit_kind": "usd",
        "action": "block",
        "thresholds": DEFAULT_THRESHOLDS,
    }


def form_of(budget: Budget) -> dict[str, str]:
    """A stored budget in the form's fields, to edit it."""
    scope = budget.scope
    prop = scope.property or ("", "")
    calendar_or_listed = budget.window in CALENDAR or budget.window in WINDOWS
    amount = budget.limit / NUSD_PER_USD if budget.unit == "usd" else budget.limit
    shown = f"{amount:.9f}".rstrip("0").rstrip(".") if budget.unit == "usd" else str(amount)
    return {
        "name": budget.name,
        "user_id": scope.user_id or "",
        "key_id": scope.key_id or "",
        "property_name": prop[0],
        "property_value": prop[1],
        "model": scope.model or "",
        "upstream": scope.upstream or "",
        "window": budget.window if calendar_or_listed else HOURS,
        "window_hours": "" if calendar_or_listed else budget.window[:-1],
        "timezone": budget.timezone,
        "limit_kind": budget.unit,
        "limit_amount": shown,
        "action": budget.action,
        "thresholds": ", ".join(str(t) for t in budget.thresholds),
    }


def kept(form: Mapping[str, str]) -> dict[str, str]:
    """What was typed, to show it again under an error."""
    return {k: form.get(k, "") for k in FIELDS}


def scope_words(scope: Mapping[str, Any], key_names: Mapping[str, str]) -> str:
    """ "user alice · model gpt-4o*", or "whole organization"."""
    parts = []
    if scope.get("user_id") is not None:
        parts.append(f"user {scope['user_id']}")
    if scope.get("key_id") is not None:
        parts.append(f"key {key_names.get(scope['key_id'], scope['key_id'])}")
    for name, value in (scope.get("property") or {}).items():
        parts.append(f"property {name} = {value}")
    if scope.get("model") is not None:
        parts.append(f"model {scope['model']}")
    if scope.get("upstream") is not None:
        parts.append(f"upstream {scope['upstream']}")
    return " · ".join(parts) or "whole organization"


def window_words(window: str) -> str:
    if window in CALENDAR:
        return f"calendar {window}"
    return f"rolling {window[:-1]} h"


def amount_words(unit: str, value: float | None) -> str:
    """An amount of usage in the budget's unit ("$0.0123", "1,200 tokens")."""
    if value is None:
        return fmt.DASH
    if unit == "usd":
        return fmt.usd(value)
    return f"{int(value):,} {unit[:-1] if value == 1 else unit}"


def limit_words(budget: Budget) -> str:
    """The limit as a person reads it: "$50.00", "200,000 tokens", "1 request"."""
    if budget.unit == "usd":
        return budget.limit_text()
    return amount_words(budget.unit, budget.limit)


def until(seconds: float) -> str:
    """How long until a time, as "in 3 h 20 min" (or "now")."""
    minutes = int(seconds // 60)
    if minutes <= 0:
        return "now"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"in {days} d {hours} h"
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min"
