"""Analytics queries shared by the dashboard pages and their JSON API twins.

Every function takes an organization and a time window ``[since_ms, until_ms)`` and counts LLM
calls only (model lists and other metadata calls are not analytics). Latency percentiles come
from fixed histogram buckets, so the same numbers come out of raw rows and of rollups.
``where`` restricts to exact values of dimensions (``{"model": "llama3.2"}``): model, provider
and upstream are read from the model rollup, a user from the user rollup, an Open WebUI task
(alone or with model and user) from the task rollup, and other combinations from raw rows.

``user_group`` is not a column: a group is its *current* members (the end-user directory's
latest groups of each user), so a group filter is the members' user ids, and a group's
breakdown row is the sum of its members' rows (a user in two groups counts in both). The
Requests page's ``user_group`` filter differs on purpose: it selects the records that carried
the group when they were made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, and_, func, select

from heliograph.store import aggregate, end_users
from heliograph.store.filters import holds_nul
from heliograph.store.schema import requests
from heliograph.store.stats import Stats

COLUMNS = (
    *("model", "provider", "user_id", "session_id", "upstream", "task"),
    *("prompt_name", "prompt_version"),  # no rollup has them: read from raw records
)
GROUP = "user_group"
DIMENSIONS = (*COLUMNS, GROUP)
Where = Mapping[str, str] | None


def _check(engine: Engine, org_id: str, where: Where) -> aggregate.Where:
    """``where`` for ``aggregate``: names checked, a group replaced by its members' ids."""
    given = dict(where or {})
    unknown = set(given) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"filters must be among {', '.join(DIMENSIONS)}")
    out: aggregate.Where = {k: v for k, v in given.items() if k != GROUP}
    if GROUP in given:
        members = tuple(sorted(end_users.group_members(engine, org_id).get(given[GROUP], [])))
        user = given.get("user_id")
        out["user_id"] = members if user is None else ((user,) if user in members else ())
    return out


def resolve_where(engine: Engine, org_id: str, where: Where) -> aggregate.Where:
    """``where`` checked and its group resolved, for the store modules built on this one."""
    return _check(engine, org_id, where)


def _dimension(dimension: str, allowed: Sequence[str] = DIMENSIONS) -> None:
    if dimension not in allowed:
        raise ValueError(f"dimension must be one of {', '.join(allowed)}")


def _window(org_id: str, since_ms: int, until_ms: int) -> Any:
    return and_(
        requests.c.org_id == org_id,
        requests.c.created_at >= since_ms,
        requests.c.created_at < until_ms,
        requests.c.kind == "llm",
    )


def summary(
    engine: Engine, org_id: str, since_ms: int, until_ms: int, where: Where = None
) -> dict[str, Any]:
    """Totals for the window, plus the number of distinct active users."""
    conds = _check(engine, org_id, where)
    with engine.connect() as conn:
        entries = aggregate.collect(conn, org_id, since_ms, until_ms, (), conds)
        users = aggregate.distinct_users(conn, org_id, since_ms, until_ms, conds)
    stats = entries[()].stats if () in entries else Stats()
    return {**stats.to_api(), "active_users": users}


def _bucketed(
    engine: Engine,
    org_id: str,
    since_ms: int,
    until_ms: int,
    bucket_ms: int,
    where: aggregate.Where | None = None,
) -> list[Stats]:
    count = max(1, -(-(until_ms - since_ms) // bucket_ms))
    points = [Stats() for _ in range(count)]
    with engine.connect() as conn:
        entries = aggregate.collect(
            conn, org_id, since_ms, until_ms, ("bucket",), where, bucket_ms=bucket_ms
        )
    for (index,), entry in entries.items():
        points[min(max(int(index), 0), count - 1)].merge(entry.stats)
    return points


def timeseries(
    engine: Engine, org_id: str, since_ms: int, until_ms: int, bucket_ms: int, where: Where = None
) -> list[dict[str, Any]]:
    """One point per bucket (empty buckets included) with the same fields as ``summary``."""
    points = _bucketed(engine, org_id, since_ms, until_ms, bucket_ms, _check(engine, org_id, where))
    return [{"start_ms": since_ms + i * bucket_ms, **p.to_api()} for i, p in enumerate(points)]


def breakdown(
    engine: Engine,
    org_id: str,
    dimension: str,
    since_ms: int,
    until_ms: int,
    limit: int = 50,
    where: Where = None,
) -> list[dict[str, Any]]:
    """Per value of ``dimension`` (one of ``DIMENSIONS``), by requests.

    Each row has the ``summary`` fields plus ``key``, ``first_ms`` and ``last_ms``; the model
    dimension also carries ``provider`` so local and cloud models sit side by side. A None key
    is no value (no model, no user; for ``task``, the chats). ``user_group`` rows sum their
    current members' figures.
    """
    _dimension(dimension)
    conds = _check(engine, org_id, where)
    column = "user_id" if dimension == GROUP else dimension
    with engine.connect() as conn:
        entries = aggregate.collect(
            conn, org_id, since_ms, until_ms, (column,), conds, providers=True
        )
    if dimension == GROUP:
        entries = _by_group(entries, end_users.group_members(engine, org_id))
    merged: dict[Any, aggregate.Entry] = {}
    for (key,), entry in entries.items():
        into = merged.setdefault(key, aggregate.Entry())
        into.stats.merge(entry.stats)
        if entry.first_ms is not None and entry.last_ms is not None:
            into.seen(entry.first_ms, entry.last_ms)
        into.providers |= entry.providers
    ordered = sorted(merged.items(), key=lambda kv: (-kv[1].stats.requests, str(kv[0])))[:limit]
    return [
        {
            "key": key,
            **entry.stats.to_api(),
            "first_ms": entry.first_ms,
            "last_ms": entry.last_ms,
            "providers": sorted(entry.providers),
        }
        for key, entry in ordered
    ]


def _by_group(
    entries: dict[tuple[Any, ...], aggregate.Entry], members: Mapping[str, Sequence[str]]
) -> dict[tuple[Any, ...], aggregate.Entry]:
    """Per-user entries summed per group of current members (a user counts in each group)."""
    out: dict[tuple[Any, ...], aggregate.Entry] = {}
    for name, users in members.items():
        into = out.setdefault((name,), aggregate.Entry())
        for user in users:
            entry = entries.get((user,))
            if entry is None:
                continue
            into.stats.merge(entry.stats)
            if entry.first_ms is not None and entry.last_ms is not None:
                into.seen(entry.first_ms, entry.last_ms)
            into.providers |= entry.providers
    return {key: entry for key, entry in out.items() if entry.stats.requests}


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


def scoped_summary(
    engine: Engine, org_id: str, since_ms: int, until_ms: int, *, dimension: str, value: str
) -> dict[str, Any]:
    """``summary`` restricted to one value of a dimension (one user, one model, ...)."""
    _dimension(dimension)
    where = _check(engine, org_id, {dimension: value})
    with engine.connect() as conn:
        entries = aggregate.collect(conn, org_id, since_ms, until_ms, (), where)
    return (entries[()].stats if () in entries else Stats()).to_api()


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
    _dimension(dimension)
    where = _check(engine, org_id, {dimension: value})
    points = _bucketed(engine, org_id, since_ms, until_ms, bucket_ms, where)
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
    _dimension(dimension, COLUMNS)
    count = max(1, -(-(until_ms - since_ms) // bucket_ms))
    out = {k: [0] * count for k in keys}
    if not keys:
        return out
    with engine.connect() as conn:
        entries = aggregate.collect(
            conn, org_id, since_ms, until_ms, (dimension, "bucket"), bucket_ms=bucket_ms
        )
    for (key, index), entry in entries.items():
        if key in out:
            out[key][min(max(int(index), 0), count - 1)] += entry.stats.requests
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
    (e.g. each user's top models).

    Users, models and tasks are read from the task rollup, which has all three per hour (a
    30-day Users page would otherwise count a million raw rows); other pairs raw."""
    for name in (dimension, other):
        _dimension(name, COLUMNS)
    out: dict[str, list[tuple[str, int]]] = {k: [] for k in keys}
    wanted = [k for k in keys if not holds_nul(k)]
    if not wanted:
        return out
    if {dimension, other} <= aggregate.TASK_DIMS:
        with engine.connect() as conn:
            found = aggregate.sums(
                conn, org_id, since_ms, until_ms, (dimension, other), {dimension: tuple(wanted)}
            )
        for (key, value), stats in found.items():
            if key in out and value is not None:
                out[key].append((value, stats.requests))
        return {k: sorted(v, key=lambda kv: (-kv[1], kv[0]))[:per_key] for k, v in out.items()}
    a, b = requests.c[dimension], requests.c[other]
    query = (
        select(a.label("key"), b.label("value"), func.count().label("n"))
        .where(_window(org_id, since_ms, until_ms), a.in_(wanted), b.is_not(None))
        .group_by(a, b)
    )
    with engine.connect() as conn:
        for row in conn.execute(query):
            out[row.key].append((row.value, int(row.n)))
    return {k: sorted(v, key=lambda kv: (-kv[1], kv[0]))[:per_key] for k, v in out.items()}
