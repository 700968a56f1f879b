"""Analytics queries shared by the dashboard pages and their JSON API twins.

Every function takes an organization and a time window ``[since_ms, until_ms)`` and counts LLM
calls only (model lists and other metadata calls are not analytics). Latency percentiles come
from fixed histogram buckets, so the same numbers come out of raw rows and of rollups.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, func, select

from heliograph.store.schema import requests

# Upper bounds (ms) of the latency / TTFT histogram buckets; the last bucket is open.
BUCKETS_MS: tuple[float, ...] = (
    10,
    25,
    50,
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    4000,
    5000,
    7500,
    10000,
    15000,
    20000,
    30000,
    45000,
    60000,
    120000,
    300000,
)
NBUCKETS = len(BUCKETS_MS) + 1
DIMENSIONS = ("model", "provider", "user_id", "session_id", "upstream")


def bucket_of(ms: float) -> int:
    return bisect.bisect_left(BUCKETS_MS, ms)


def percentile(hist: Sequence[int], q: float) -> float | None:
    """Approximate percentile from bucket counts (linear inside the bucket)."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            low = BUCKETS_MS[i - 1] if i > 0 else 0.0
            high = BUCKETS_MS[i] if i < len(BUCKETS_MS) else BUCKETS_MS[-1] * 2
            return round(low + (high - low) * ((rank - seen) / count), 1)
        seen += count
    return BUCKETS_MS[-1]


@dataclass
class Stats:
    """Aggregates of a set of requests; mergeable, so rollup rows and raw rows both feed it."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_nusd: int = 0
    unpriced: int = 0
    latency_sum: float = 0.0
    latency_n: int = 0
    ttft_sum: float = 0.0
    ttft_n: int = 0
    tps_sum: float = 0.0
    tps_n: int = 0
    latency_hist: list[int] = field(default_factory=lambda: [0] * NBUCKETS)
    ttft_hist: list[int] = field(default_factory=lambda: [0] * NBUCKETS)

    def add_row(self, row: Any) -> None:
        self.requests += 1
        self.errors += 1 if row.state in ("error", "interrupted") else 0
        self.prompt_tokens += row.prompt_tokens or 0
        self.completion_tokens += row.completion_tokens or 0
        self.cached_tokens += row.cached_tokens or 0
        if row.cost_known:
            self.cost_nusd += row.cost_nusd or 0
        else:
            self.unpriced += 1
        if row.latency_ms is not None:
            self.latency_sum += row.latency_ms
            self.latency_n += 1
            self.latency_hist[bucket_of(row.latency_ms)] += 1
        if row.ttft_ms is not None:
            self.ttft_sum += row.ttft_ms
            self.ttft_n += 1
            self.ttft_hist[bucket_of(row.ttft_ms)] += 1
        if row.output_tokens_per_s is not None:
            self.tps_sum += row.output_tokens_per_s
            self.tps_n += 1

    def to_api(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 4) if self.requests else 0.0,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": self.cost_nusd / 1e9,
            "unpriced_requests": self.unpriced,
            "avg_latency_ms": round(self.latency_sum / self.latency_n, 1)
            if self.latency_n
            else None,
            "p50_latency_ms": percentile(self.latency_hist, 0.5),
            "p95_latency_ms": percentile(self.latency_hist, 0.95),
            "avg_ttft_ms": round(self.ttft_sum / self.ttft_n, 1) if self.ttft_n else None,
            "p50_ttft_ms": percentile(self.ttft_hist, 0.5),
            "avg_output_tokens_per_s": round(self.tps_sum / self.tps_n, 1) if self.tps_n else None,
        }


_ROW_COLUMNS = (
    requests.c.created_at,
    requests.c.state,
    requests.c.prompt_tokens,
    requests.c.completion_tokens,
    requests.c.cached_tokens,
    requests.c.cost_known,
    requests.c.cost_nusd,
    requests.c.latency_ms,
    requests.c.ttft_ms,
    requests.c.output_tokens_per_s,
)


def _window(org_id: str, since_ms: int, until_ms: int) -> Any:
    return and_(
        requests.c.org_id == org_id,
        requests.c.created_at >= since_ms,
        requests.c.created_at < until_ms,
        requests.c.kind == "llm",
    )


def summary(engine: Engine, org_id: str, since_ms: int, until_ms: int) -> dict[str, Any]:
    """Totals for the window, plus the number of distinct active users."""
    stats = Stats()
    with engine.connect() as conn:
        for row in conn.execute(select(*_ROW_COLUMNS).where(_window(org_id, since_ms, until_ms))):
            stats.add_row(row)
        users = conn.execute(
            select(func.count(func.distinct(requests.c.user_id))).where(
                _window(org_id, since_ms, until_ms)
            )
        ).scalar_one()
    return {**stats.to_api(), "active_users": int(users)}


def timeseries(
    engine: Engine, org_id: str, since_ms: int, until_ms: int, bucket_ms: int
) -> list[dict[str, Any]]:
    """One point per bucket (empty buckets included) with the same fields as ``summary``."""
    count = max(1, -(-(until_ms - since_ms) // bucket_ms))
    points = [Stats() for _ in range(count)]
    with engine.connect() as conn:
        for row in conn.execute(select(*_ROW_COLUMNS).where(_window(org_id, since_ms, until_ms))):
            points[min((row.created_at - since_ms) // bucket_ms, count - 1)].add_row(row)
    return [{"start_ms": since_ms + i * bucket_ms, **p.to_api()} for i, p in enumerate(points)]


def breakdown(
    engine: Engine,
    org_id: str,
    dimension: str,
    since_ms: int,
    until_ms: int,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Per value of ``dimension`` (model, provider, user_id, session_id, upstream), by requests.

    Each row has the ``summary`` fields plus ``key``, ``first_ms`` and ``last_ms``; the model
    dimension also carries ``provider`` so local and cloud models sit side by side.
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    column = requests.c[dimension]
    groups: dict[Any, Stats] = {}
    extra: dict[Any, dict[str, Any]] = {}
    with engine.connect() as conn:
        query = select(column.label("key"), requests.c.provider, *_ROW_COLUMNS).where(
            _window(org_id, since_ms, until_ms)
        )
        for row in conn.execute(query):
            stats = groups.setdefault(row.key, Stats())
            stats.add_row(row)
            info = extra.setdefault(
                row.key, {"first_ms": row.created_at, "last_ms": row.created_at, "providers": set()}
            )
            info["first_ms"] = min(info["first_ms"], row.created_at)
            info["last_ms"] = max(info["last_ms"], row.created_at)
            info["providers"].add(row.provider)
    ordered = sorted(groups.items(), key=lambda kv: (-kv[1].requests, str(kv[0])))[:limit]
    out = []
    for key, stats in ordered:
        info = extra[key]
        out.append(
            {
                "key": key,
                **stats.to_api(),
                "first_ms": info["first_ms"],
                "last_ms": info["last_ms"],
                "providers": sorted(info["providers"]),
            }
        )
    return out


# ---------------------------------------------------------------- page helpers (dashboard)

_MIN, _HOUR, _DAY = 60_000, 3_600_000, 86_400_000
BUCKET_SIZES = (
    *(_MIN, 2 * _MIN, 5 * _MIN, 10 * _MIN, 15 * _MIN, 30 * _MIN),
    *(_HOUR, 3 * _HOUR, 6 * _HOUR, 12 * _HOUR),
    *(_DAY, 7 * _DAY, 30 * _DAY, 91 * _DAY, 365 * _DAY),
)


def auto_bucket(span_ms: int, max_points: int = 60) -> int:
    """The smallest round bucket size that splits ``span_ms`` into at most ``max_points``."""
    return next((b for b in BUCKET_SIZES if span_ms / b <= max_points), BUCKET_SIZES[-1])


def _scoped(org_id: str, since_ms: int, until_ms: int, dimension: str, value: str) -> Any:
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    return and_(_window(org_id, since_ms, until_ms), requests.c[dimension] == value)


def scoped_summary(
    engine: Engine, org_id: str, since_ms: int, until_ms: int, *, dimension: str, value: str
) -> dict[str, Any]:
    """``summary`` restricted to one value of a dimension (one user, one model, ...)."""
    stats = Stats()
    with engine.connect() as conn:
        query = select(*_ROW_COLUMNS).where(_scoped(org_id, since_ms, until_ms, dimension, value))
        for row in conn.execute(query):
            stats.add_row(row)
    return stats.to_api()


def scoped_timeseries(
    engine: Engine,
    org_id: str,
    since_ms: int,
    until_ms: int,
    bucket_ms: int,
    *,
    dimension: str,
    value: str,
) -> list[dict[str, Any]]:
    """``timeseries`` restricted to one value of a dimension."""
    count = max(1, -(-(until_ms - since_ms) // bucket_ms))
    points = [Stats() for _ in range(count)]
    with engine.connect() as conn:
        query = select(*_ROW_COLUMNS).where(_scoped(org_id, since_ms, until_ms, dimension, value))
        for row in conn.execute(query):
            points[min((row.created_at - since_ms) // bucket_ms, count - 1)].add_row(row)
    return [{"start_ms": since_ms + i * bucket_ms, **p.to_api()} for i, p in enumerate(points)]


def requests_by(
    engine: Engine,
    org_id: str,
    dimension: str,
    keys: Sequence[str],
    since_ms: int,
    until_ms: int,
    bucket_ms: int,
) -> dict[str, list[int]]:
    """Request counts per bucket for each of ``keys`` (e.g. the top models), for usage charts."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    count = max(1, -(-(until_ms - since_ms) // bucket_ms))
    out = {k: [0] * count for k in keys}
    if not keys:
        return out
    column = requests.c[dimension]
    bucket = ((requests.c.created_at - since_ms) // bucket_ms).label("bucket")
    query = (
        select(column.label("key"), bucket, func.count().label("n"))
        .where(_window(org_id, since_ms, until_ms), column.in_(list(keys)))
        .group_by(column, bucket)
    )
    with engine.connect() as conn:
        for row in conn.execute(query):
            out[row.key][min(int(row.bucket), count - 1)] += int(row.n)
    return out


def top_pairs(
    engine: Engine,
    org_id: str,
    dimension: str,
    other: str,
    keys: Sequence[str],
    since_ms: int,
    until_ms: int,
    per_key: int = 3,
) -> dict[str, list[tuple[str, int]]]:
    """For each of ``keys`` of ``dimension``, its most used values of ``other`` with counts
    (e.g. each user's top models)."""
    for name in (dimension, other):
        if name not in DIMENSIONS:
            raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    out: dict[str, list[tuple[str, int]]] = {k: [] for k in keys}
    if not keys:
        return out
    a, b = requests.c[dimension], requests.c[other]
    query = (
        select(a.label("key"), b.label("value"), func.count().label("n"))
        .where(_window(org_id, since_ms, until_ms), a.in_(list(keys)), b.is_not(None))
        .group_by(a, b)
    )
    with engine.connect() as conn:
        for row in conn.execute(query):
            out[row.key].append((row.value, int(row.n)))
    return {k: sorted(v, key=lambda kv: (-kv[1], kv[0]))[:per_key] for k, v in out.items()}
