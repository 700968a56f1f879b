"""Budget windows: which spend counts now, and when the window resets.

Spend is kept in buckets. A calendar window (day, week from Monday, month, in the budget's
time zone) is one bucket keyed by its start. A rolling window of N hours is 60 buckets of N
minutes each: what counts now is the current bucket and the 59 before it, so the window is
exact to within one bucket (1 minute for ``1h``, 24 minutes for ``24h``), and spend leaves it
a bucket at a time. Reservations are held against a window key: the calendar window's start,
or 0 for a rolling window (whose reservations are always "now").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from heliograph.budgets.rules import Budget

ROLLING_BUCKETS = 60


@dataclass(frozen=True, slots=True)
class Span:
    wk: int  # the key reservations are held under
    first: int  # the oldest bucket that counts (epoch seconds)
    last: int  # the newest bucket that counts
    resets_at: int  # epoch seconds: the next time spend leaves the window


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def bucket_s(budget: Budget) -> int:
    rolling = budget.rolling_s
    return max(60, rolling // ROLLING_BUCKETS) if rolling else 0


def span(budget: Budget, now: float) -> Span:
    """The window that counts at ``now`` (epoch seconds)."""
    size = bucket_s(budget)
    if size:
        last = int(now // size) * size
        return Span(0, last - (ROLLING_BUCKETS - 1) * size, last, last + size)
    start, end = _calendar(budget.window, budget.timezone, now)
    return Span(start, start, start, end)


def bucket_of(budget: Budget, ts: float) -> int:
    """The bucket spend made at ``ts`` (epoch seconds) is counted in."""
    size = bucket_s(budget)
    if size:
        return int(ts // size) * size
    return _calendar(budget.window, budget.timezone, ts)[0]


def _calendar(window: str, timezone: str, ts: float) -> tuple[int, int]:
    """(start, end) in epoch seconds of the calendar window holding ``ts``."""
    zone = _zone(timezone)
    local = datetime.fromtimestamp(ts, zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        start, end = day, day + timedelta(days=1)
    elif window == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    # Naive wall-clock arithmetic, then the zone's offset at each end (DST changes inside).
    start = start.replace(tzinfo=None).replace(tzinfo=zone)
    end = end.replace(tzinfo=None).replace(tzinfo=zone)
    return int(start.timestamp()), int(end.timestamp())
