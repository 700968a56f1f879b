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
import re
import time
import zoneinfo
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
# The page state every page keeps when moving between pages (the nav links carry it).
KEPT = ("range", "since", "until", "tz")
# Offered in the timezone picker besides UTC, the current one and the browser's own.
COMMON_ZONES = (
    *("America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York"),
    *("America/Sao_Paulo", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Moscow"),
    *("Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai"),
    *("Asia/Seoul", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland"),
)
SLACK = 0.05  # default_range: the share of a range its oldest traffic may fall outside
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
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


def input_value(ms: int | None, tz: dt.tzinfo = dt.UTC) -> str:
    """A datetime-local input's value, in the page's timezone."""
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%dT%H:%M")


def parse_tz(value: str | None) -> tuple[dt.tzinfo, str]:
    """The timezone a page shows times in (``?tz=Asia/Seoul``), and an error for a bad one."""
    if not value or value.upper() == "UTC":
        return dt.UTC, ""
    try:
        return zoneinfo.ZoneInfo(value), ""
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC, f"Unknown timezone {value[:60]!r}; showing UTC."


def local_ms(value: str, name: str, tz: dt.tzinfo) -> int:
    """A custom range's bound: a time without an offset (a datetime-local input) is read in
    the page's timezone, anything else as ``store.times`` reads it."""
    text = value.strip()
    if _NAIVE.match(text):
        stamp = dt.datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=tz)
        return int(stamp.timestamp() * 1000)
    return parse_time(text, name)


def default_range(first_ms: int | None, last_ms: int | None, now: int) -> str:
    """The range a page opens on when the URL names none: one that shows the data.

    A young install (or the demo's week of history) opens on the smallest range holding all
    of its traffic, so it is not one bar at the right edge of 24 h; an older one on the
    smallest range that holds its latest request; 24 h when there is nothing or nothing
    recent. Traffic that began up to ``SLACK`` of a range before it still opens on it."""
    if first_ms is None or last_ms is None:
        return "24h"
    for key in ("1h", "24h", "7d", "30d"):
        # "nearly all": a week of history seen an hour later is still a week, not a month
        if now - first_ms <= RANGES[key] * (1 + SLACK):
            return key
    return next((k for k in ("24h", "7d", "30d") if now - last_ms <= RANGES[k]), "24h")


def zone_offset_ms(tz: dt.tzinfo, at_ms: int) -> int:
    """``tz``'s offset from UTC at a time, in whole hours (the rollups are hourly)."""
    offset = dt.datetime.fromtimestamp(at_ms / 1000, tz).utcoffset() or dt.timedelta()
    return int(offset.total_seconds() // 3600) * HOUR


@dataclass
class Window:
    """A time window aligned to its chart buckets: ``[since_ms, until_ms)``."""

    key: str
    since_ms: int
    until_ms: int
    bucket_ms: int
    error: str = ""
    note: str = ""
    tz: dt.tzinfo = dt.UTC

    @property
    def tz_name(self) -> str:
        return str(getattr(self.tz, "key", "UTC"))

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
        return input_value(self.since_ms, self.tz)

    @property
    def until_input(self) -> str:
        return input_value(self.until_ms, self.tz)

    @property
    def zones(self) -> list[str]:
        """The timezone picker's choices: UTC, this page's zone, then the common ones."""
        return list(dict.fromkeys(("UTC", self.tz_name, *COMMON_ZONES)))

    def picker_params(self, **changes: str) -> dict[str, str]:
        """Parameters for a range-picker link: the timezone kept (unless UTC), ``changes``."""
        out = {"tz": self.tz_name} if self.tz_name != "UTC" else {}
        return {**out, **changes}


def _align(instant: int, bucket: int, offset: int, up: bool) -> int:
    """``instant`` rounded to a bucket edge of the local clock (``offset`` from UTC)."""
    shifted = instant + offset
    edge = -(-shifted // bucket) * bucket if up else shifted // bucket * bucket
    return edge - offset


def parse_window(q: QueryParams, default: str = "24h", tz: dt.tzinfo = dt.UTC) -> Window:
    """The page's time window; buckets of six hours and more start at local midnight."""
    key = q.get("range") or default
    now = now_ms()
    error = ""
    if key == "custom":
        try:
            since = local_ms(q.get("since", ""), "since", tz)
            until = local_ms(q["until"], "until", tz) if q.get("until") else now
            if until <= since:
                raise ValueError("the end must be after the start")
            since, until, note = recordable(since, until, now)
        except ValueError as exc:
            error = f"Invalid custom range ({exc}); showing the last 24 hours."
            key = "24h"
        else:
            bucket = auto_bucket(until - since)
            offset = zone_offset_ms(tz, until) if bucket > HOUR else 0
            start = _align(since, bucket, offset, up=False)
            end = _align(until, bucket, offset, up=True)
            return Window("custom", start, end, bucket, note=note, tz=tz)
    if key not in RANGES:
        key = default if default in RANGES else "24h"
    bucket = RANGE_BUCKETS[key]
    offset = zone_offset_ms(tz, now) if bucket > HOUR else 0
    until = _align(now, bucket, offset, up=True)
    return Window(key, until - RANGES[key], until, bucket, error, tz=tz)


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
