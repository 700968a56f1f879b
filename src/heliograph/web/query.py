"""Page state that lives in the URL: the time window and the Requests filters.

Everything a view shows is decided by its query string, so a URL can be shared. Parsing is
lenient (a bad value is reported and ignored, never a 500) and ``params()`` rebuilds the
query string for links (sorting, pagination, export, drill-downs). Dates are read by the
filter engine's parser (years 1 to 9999 only); a custom range is narrowed to the times a
request can have been recorded (1970 to tomorrow), with a note, so its buckets stay few and
every bucket edge is a date that can be shown.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import QueryParams

from heliograph.store import filters
from heliograph.store.analytics import auto_bucket
from heliograph.store.requests import RequestFilter, iso_ms
from heliograph.store.search import SORTS

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
EARLIEST_MS = 0  # no request is recorded before 1970
RANGES = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
RANGE_BUCKETS = {"1h": 2 * MINUTE, "24h": HOUR, "7d": 6 * HOUR, "30d": DAY}
MAX_PAGE = 500
TEXT_FIELDS = ("model", "provider", "user", "session", "q", "kind")


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_when(value: str, name: str = "the time") -> int:
    """Epoch ms (or seconds) or ISO 8601 / datetime-local (UTC) to epoch ms.

    ValueError (a ``FilterError`` naming ``name``) for anything else, or outside years 1-9999.
    """
    return filters.to_epoch_ms(value.strip(), name)


def recordable(since_ms: int, until_ms: int, now: int) -> tuple[int, int, str]:
    """``[since, until)`` narrowed to when requests can have been recorded, and a note if
    it was; ValueError when no such time is left."""
    low, high = max(since_ms, EARLIEST_MS), min(until_ms, now + DAY)
    if high <= low:
        raise ValueError("no request can have been recorded in it")
    if (low, high) == (since_ms, until_ms):
        return low, high, ""
    shown = f"{iso_ms(low)[:10]} to {iso_ms(high)[:10]}"
    return low, high, f"The range was narrowed to {shown}: no request is recorded outside it."


def input_value(ms: int | None) -> str:
    """A datetime-local input's value (UTC)."""
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M")


@dataclass
class Window:
    """A time window aligned to its chart buckets: ``[since_ms, until_ms)``."""

    key: str
    since_ms: int
    until_ms: int
    bucket_ms: int
    error: str = ""
    note: str = ""

    @property
    def starts(self) -> list[int]:
        return list(range(self.since_ms, self.until_ms, self.bucket_ms))

    def params(self) -> dict[str, str]:
        if self.key == "custom":
            return {
                "range": "custom",
                "since": iso_ms(self.since_ms),
                "until": iso_ms(self.until_ms),
            }
        return {"range": self.key}

    def request_params(
        self, since_ms: int | None = None, until_ms: int | None = None
    ) -> dict[str, str]:
        """The Requests-page filter for this window (or a part of it)."""
        return {
            "since": iso_ms(self.since_ms if since_ms is None else since_ms),
            "until": iso_ms(self.until_ms if until_ms is None else until_ms),
        }

    @property
    def since_input(self) -> str:
        return input_value(self.since_ms)

    @property
    def until_input(self) -> str:
        return input_value(self.until_ms)


def parse_window(q: QueryParams, default: str = "24h") -> Window:
    key = q.get("range") or default
    now = now_ms()
    error = ""
    if key == "custom":
        try:
            since = parse_when(q.get("since", ""), "the start")
            until = parse_when(q["until"], "the end") if q.get("until") else now
            if until <= since:
                raise ValueError("the end must be after the start")
            since, until, note = recordable(since, until, now)
        except ValueError as exc:
            error = f"Invalid custom range ({exc}); showing the last 24 hours."
            key = "24h"
        else:
            bucket = auto_bucket(until - since)
            start = since // bucket * bucket
            end = -(-until // bucket) * bucket
            return Window("custom", start, end, bucket, note=note)
    if key not in RANGES:
        key = default
    bucket = RANGE_BUCKETS[key]
    until = -(-now // bucket) * bucket
    return Window(key, until - RANGES[key], until, bucket, error)


@dataclass
class RequestQuery:
    """The Requests page's filters, sort and page, as parsed from and written to the URL."""

    values: dict[str, str] = field(default_factory=dict)
    props: list[str] = field(default_factory=list)
    sort: str = "time"
    ascending: bool = False
    cursor: str | None = None
    limit: int = 50
    errors: list[str] = field(default_factory=list)
    filter: RequestFilter = field(default_factory=RequestFilter)

    def params(self, **changes: Any) -> dict[str, Any]:
        """Query parameters for a link: current filters with ``changes`` (None removes)."""
        out: dict[str, Any] = dict(self.values)
        if self.sort != "time":
            out["sort"] = self.sort
        if self.ascending:
            out["order"] = "asc"
        out.update(changes)
        return {k: v for k, v in out.items() if v not in (None, "")}

    def pairs(self, **changes: Any) -> list[tuple[str, str]]:
        base = [(k, str(v)) for k, v in self.params(**changes).items()]
        return base + [("prop", p) for p in self.props]

    @property
    def active(self) -> bool:
        return bool(self.values or self.props)


def _number(q: QueryParams, name: str, errors: list[str]) -> float | None:
    raw = q.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        errors.append(f"{name} must be a number")
        return None
    if value < 0 or value != value or value == float("inf"):
        errors.append(f"{name} must be a non-negative number")
        return None
    return value


def parse_request_query(q: QueryParams) -> RequestQuery:
    rq = RequestQuery()
    f, errors, values = rq.filter, rq.errors, rq.values
    for name in TEXT_FIELDS:
        if q.get(name, "").strip():
            values[name] = q[name].strip()[:500]
    f.model, f.provider = values.get("model"), values.get("provider")
    f.user_id, f.session_id = values.get("user"), values.get("session")
    f.text, f.kind = values.get("q"), values.get("kind")
    status = q.get("status", "").strip().lower()
    if status:
        if len(status) == 3 and status[0] in "12345" and status[1:] == "xx":
            f.status_class = int(status[0])
            values["status"] = status
        elif status.isdigit() and len(status) <= 3:
            f.status = int(status)
            values["status"] = status
        else:
            errors.append("status must be a code like 429 or a class like 5xx")
    if q.get("errors") in ("1", "on", "true"):
        f.errors_only = True
        values["errors"] = "1"
    feedback = q.get("feedback", "")
    if feedback in ("good", "bad"):  # through the same filter engine as the query API
        f.where = filters.leaf("feedback", "equals", feedback == "good")
        values["feedback"] = feedback
    window = q.get("range", "")
    if window in RANGES:
        values["range"] = window
        f.since_ms = now_ms() - RANGES[window]
    for name in ("since", "until"):
        raw = q.get(name, "").strip()
        if raw and window not in RANGES:
            try:
                setattr(f, f"{name}_ms", parse_when(raw, name))
                values[name] = raw
            except ValueError:
                errors.append(f"{name} must be a date and time (ISO 8601) in years 1 to 9999")
    for name, attr, scale in (
        ("min_cost", "min_cost_nusd", 1e9),
        ("max_cost", "max_cost_nusd", 1e9),
        ("min_latency", "min_latency_ms", 1.0),
        ("max_latency", "max_latency_ms", 1.0),
    ):
        number = _number(q, name, errors)
        if number is not None:
            values[name] = q[name].strip()
            setattr(f, attr, int(number * scale) if scale != 1.0 else number)
    for raw in q.getlist("prop"):
        name, sep, value = raw.partition("=")
        if sep and name.strip() and value.strip():
            f.properties[name.strip().lower()] = value.strip()
            rq.props.append(f"{name.strip().lower()}={value.strip()}")
        elif raw.strip():
            errors.append("property filters look like name=value")
    sort = q.get("sort", "time")
    rq.sort = sort if sort in SORTS else "time"
    rq.ascending = q.get("order") == "asc"
    rq.cursor = q.get("cursor") or None
    raw_limit = q.get("limit", "")
    if raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_PAGE:
        rq.limit = int(raw_limit)
        values["limit"] = raw_limit
    elif raw_limit:
        errors.append(f"limit must be between 1 and {MAX_PAGE}")
    return rq
