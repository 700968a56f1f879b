"""Page state that lives in the URL: the time window and the Requests filters.

Everything a view shows is decided by its query string, so a URL can be shared. Parsing is
lenient (a bad value is reported, never a 500; a bad filter selects nothing rather than
everything) and ``params()`` rebuilds the query string for links (sorting, pagination,
export, drill-downs). Filters are the API's spellings, read by ``store.filter_params``;
times are read by ``store.times`` like every other door's. Relative ranges (``range=24h``)
are the dashboard's own, built on top. A custom range is narrowed to the times a request can
have been recorded (1970 to tomorrow), with a note, so its buckets stay few and every bucket
edge is a date that can be shown.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import QueryParams

from heliograph.store import filter_params, filters, selection
from heliograph.store.analytics import auto_bucket
from heliograph.store.requests import iso_ms
from heliograph.store.search import SORTS
from heliograph.store.selection import RequestFilter
from heliograph.store.times import parse_time

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
EARLIEST_MS = 0  # no request is recorded before 1970
RANGES = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
RANGE_BUCKETS = {"1h": 2 * MINUTE, "24h": HOUR, "7d": 6 * HOUR, "30d": DAY}
MAX_PAGE = 500
PROPERTY = "property."
# The page's spellings before it shared the API's; links saved with them keep working.
ALIASES = {"user": "user_id", "session": "session_id"}
FEEDBACK_WORDS = {"good": "true", "bad": "false"}
NOTHING = filters.Branch("or", ())  # matches no record
FORM_INPUTS = (
    *("range", "since", "until", "model", "provider", "status", "errors", "feedback"),
    *("user_id", "session_id", "q", "min_cost", "max_cost", "min_latency", "max_latency"),
    *("task", "user_group", "limit"),
)


def now_ms() -> int:
    return int(time.time() * 1000)


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
            since = parse_time(q.get("since", ""), "since")
            until = parse_time(q["until"], "until") if q.get("until") else now
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
    """The Requests page's filters, sort and page, as parsed from and written to the URL.

    ``values`` holds the filter parameters in their one spelling (``store.fields``) plus the
    page's own (``range``, ``errors``, ``q``, ``limit``), so every link the page builds writes
    the one spelling, whatever spelling the page was opened with.
    """

    values: dict[str, str] = field(default_factory=dict)
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
        return [(k, str(v)) for k, v in self.params(**changes).items()]

    @property
    def properties(self) -> list[tuple[str, str]]:
        """Property filters as (name, value), for the form's inputs."""
        return [(k[len(PROPERTY) :], v) for k, v in self.values.items() if k.startswith(PROPERTY)]

    @property
    def hidden(self) -> list[tuple[str, str]]:
        """Filters the form has no input for, so that submitting it keeps them."""
        return [
            (k, v)
            for k, v in self.values.items()
            if k not in FORM_INPUTS and not k.startswith(PROPERTY)
        ]

    @property
    def active(self) -> bool:
        return bool(self.values)


def _canonical(q: QueryParams) -> dict[str, str]:
    """The page's parameters in their one spelling (older spellings are read as aliases); a
    malformed ``prop`` stays ``prop``."""
    out: dict[str, str] = {}
    for name, raw in q.multi_items():
        value = raw.strip()
        if not value:
            continue
        name = ALIASES.get(name, name)
        if name == "prop":  # the form's "Add property" box: name=value
            key, sep, text = value.partition("=")
            if sep and key.strip() and text.strip():
                name, value = PROPERTY + key.strip().lower(), text.strip()
        elif name.startswith(PROPERTY):
            name = name.lower()  # stored property names are lower-case
        elif name == "feedback":
            value = FEEDBACK_WORDS.get(value, value)
        out[name] = value
    return out


def parse_request_query(q: QueryParams) -> RequestQuery:
    """The page's URL as a ``RequestQuery``; bad values are reported in ``errors``, never
    raised, and every filter goes through ``store.filter_params`` as the API's do."""
    rq = RequestQuery()
    errors, values = rq.errors, rq.values
    given = _canonical(q)
    items: list[filters.Filter] = []
    if "prop" in given:
        errors.append("property filters look like name=value")
        items.append(NOTHING)
    window = given.get("range", "")
    if window in RANGES:
        values["range"] = window
        items.append(filters.Leaf("created_at", "gte", now_ms() - RANGES[window]))
    status = given.get("status", "").lower()
    if len(status) == 3 and status[0] in "12345" and status[1:] == "xx":
        items.append(selection.status_class(int(status[0])))
        values["status"] = status
    if given.get("errors") in ("1", "on", "true"):
        items.append(selection.failed())
        values["errors"] = "1"
    for name, value in given.items():
        if name in values or not filter_params.is_filter_param(name):
            continue
        if name in ("since", "until") and window in RANGES:
            continue
        try:
            items.append(filter_params.parse_one(name, value))
        except filters.FilterError as exc:
            errors.append(str(exc))
            items.append(NOTHING)  # as the API's 400: never unfiltered rows that look filtered
        else:
            values[name] = value
    if given.get("q"):
        values["q"] = rq.filter.text = given["q"][:500]
    rq.filter.where = filters.all_of(*items)
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
