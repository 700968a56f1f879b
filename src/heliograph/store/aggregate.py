"""Aggregating a time window from hourly rollups plus raw rows at its ragged edges.

Whole hours inside ``[since, until)`` come from the rollup tables (a few rows per hour, so a
30-day dashboard reads thousands of rows, not millions); the partial hours at either end come
from the raw ``requests`` table, which the ``(org_id, created_at)`` index makes cheap. Both
feed the same mergeable ``Stats``, so the figures are identical either way.

Which rollup serves a query depends on its dimensions (groups and ``where`` together): the
smallest table that has them all (``TABLES``, in order). Model, provider and upstream read
``rollup_hourly``; a user alone reads ``rollup_user_hourly``; an Open WebUI task with a model,
a task with a user, and a user with a model read the task rollup's projection on that pair
(a task alone: task and model); all three read ``rollup_task_hourly`` (like the user rollup,
these keep no latency histograms, so no percentiles per user or task); anything else is read
raw. Of the lean tables' whole hours, the whole UTC days are read from their daily twins
(``periods``), except for charts (buckets). Null model, user and task values are
stored as "" in rollups and come back as None (a None task is a chat); a ``where`` value of ""
selects them, a tuple of values selects any of them (a group's members) and ``PRESENT`` any
value but none (the tasks, without the chats).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, false, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from heliograph.store.filters import holds_nul
from heliograph.store.rollups import (
    DAILY_OF,
    DAY_MS,
    HOUR_MS,
    read_stats,
    rollup_hourly,
    rollup_task_hourly,
    rollup_task_model_hourly,
    rollup_task_user_hourly,
    rollup_user_hourly,
    rollup_user_model_hourly,
)
from heliograph.store.schema import metadata, requests
from heliograph.store.stats import Stats

ROW_COLUMNS = (
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
    requests.c.prompt_tokens_per_s,
    requests.c.load_ms,
)
MODEL_DIMS = frozenset({"model", "provider", "upstream"})
USER_DIMS = frozenset({"user_id"})
TASK_DIMS = frozenset({"task", "model", "user_id"})
NULLABLE = frozenset({"model", "user_id", "task", "prompt_name"})  # "" in rollups: none
NUMBERED = frozenset({"prompt_version"})  # integer columns: values are digits, "" is none
TABLES: tuple[tuple[frozenset[str], Any], ...] = (  # smallest first: the first that covers
    (MODEL_DIMS, rollup_hourly),
    (USER_DIMS, rollup_user_hourly),
    (frozenset({"task", "model"}), rollup_task_model_hourly),
    (frozenset({"task", "user_id"}), rollup_task_user_hourly),
    (frozenset({"user_id", "model"}), rollup_user_model_hourly),
    (TASK_DIMS, rollup_task_hourly),
)
RANGES_PER_QUERY = 100


class Present:
    """A ``where`` value: any value but none (for ``task``, the background tasks, no chats)."""

    def __repr__(self) -> str:
        return "PRESENT"


PRESENT = Present()
Value = str | tuple[str, ...] | Present  # one exact value, any of several, or any at all
Where = dict[str, Value]


@dataclass
class Entry:
    stats: Stats = field(default_factory=Stats)
    first_ms: int | None = None
    last_ms: int | None = None
    providers: set[str] = field(default_factory=set)

    def seen(self, first: int, last: int) -> None:
        self.first_ms = first if self.first_ms is None else min(self.first_ms, first)
        self.last_ms = last if self.last_ms is None else max(self.last_ms, last)


def split(since_ms: int, until_ms: int) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
    """(whole-hour range for rollups or None, raw ranges for the edges)."""
    lo = -(-since_ms // HOUR_MS) * HOUR_MS
    hi = until_ms // HOUR_MS * HOUR_MS
    if hi - lo < HOUR_MS:
        return None, [(since_ms, until_ms)]
    edges = [r for r in ((since_ms, lo), (hi, until_ms)) if r[0] < r[1]]
    return (lo, hi), edges


def _table_for(groups: Sequence[str], where: Where) -> Any:
    dims = set(groups) | set(where)
    return next((table for covered, table in TABLES if dims <= covered), None)


def periods(table: Any, whole: tuple[int, int]) -> list[tuple[Any, int, int]]:
    """Reads ``(table, since, until)`` that cover the whole hours ``whole``: its whole UTC days
    from the table's daily twin, if it has one, and the hours around them from the table."""
    lo, hi = whole
    daily = DAILY_OF.get(table.name)
    first_day, end_day = -(-lo // DAY_MS) * DAY_MS, hi // DAY_MS * DAY_MS
    if daily is None or end_day <= first_day:
        return [(table, lo, hi)]
    reads = [(metadata.tables[daily], first_day, end_day)]
    reads += [(table, a, b) for a, b in ((lo, first_day), (end_day, hi)) if a < b]
    return reads


def _values(value: Value) -> tuple[str, ...]:
    if isinstance(value, Present):
        return ()
    return value if isinstance(value, tuple) else (value,)


def _no_match(where: Where) -> bool:
    """True when ``where`` can match nothing: a NUL in a value (no stored text holds one)."""
    return any(holds_nul(*_values(v)) for v in where.values())


def _rollup_cond(table: Any, name: str, value: Value) -> ColumnElement[bool]:
    if isinstance(value, Present):
        return table.c[name] != ""  # type: ignore[no-any-return]
    if isinstance(value, tuple):
        return table.c[name].in_([v or "" for v in value])  # type: ignore[no-any-return]
    return table.c[name] == (value or "")  # type: ignore[no-any-return]


def _raw_cond(name: str, value: Value) -> ColumnElement[bool]:
    """Raw rows with this value (for a nullable dimension, "" means no value)."""
    column = requests.c[name]
    if name in NUMBERED:
        return _numbered_cond(column, value)
    if isinstance(value, Present):
        return and_(column.is_not(None), column != "")
    values = _values(value)
    found: list[ColumnElement[bool]] = []
    exact = [v for v in values if v or name not in NULLABLE]
    if exact:
        found.append(column.in_(exact) if len(exact) > 1 else column == exact[0])
    if name in NULLABLE and "" in values:
        found += [column.is_(None), column == ""]
    return or_(*found) if found else false()


def _numbered_cond(column: Any, value: Value) -> ColumnElement[bool]:
    """An integer column's values (given as digits; "" is no value, anything else none)."""
    if isinstance(value, Present):
        return column.is_not(None)  # type: ignore[no-any-return]
    values = _values(value)
    found: list[ColumnElement[bool]] = []
    numbers = [int(v) for v in values if v.isascii() and v.isdigit() and len(v) < 10]
    if numbers:
        found.append(column.in_(numbers) if len(numbers) > 1 else column == numbers[0])
    if "" in values:
        found.append(column.is_(None))
    return or_(*found) if found else false()


def collect(
    conn: Connection,
    org_id: str,
    since_ms: int,
    until_ms: int,
    groups: Sequence[str] = (),
    where: Where | None = None,
    *,
    bucket_ms: int | None = None,
    providers: bool = False,
    measures: Sequence[str] | None = None,
) -> dict[tuple[Any, ...], Entry]:
    """Stats per combination of ``groups`` values over the window (LLM calls only).

    ``groups`` may include "bucket": the index of the ``bucket_ms``-long time bucket counted
    from ``since_ms`` (from rollups when both fall on hour boundaries, else from raw rows).
    ``where`` restricts to exact values of dimensions; null model or user values come back as
    None. ``providers`` also collects the providers seen per group. ``measures`` (None: all,
    with percentiles) names the ``Stats`` sums the caller needs: only those are read from
    rollups (raw rows at the edges fill every field).
    """
    where = where or {}
    out: dict[tuple[Any, ...], Entry] = {}
    if _no_match(where):
        return out
    dims = [g for g in groups if g != "bucket"]
    table = _table_for(dims, where)
    bucket = (since_ms, bucket_ms or HOUR_MS)
    aligned = "bucket" not in groups or (since_ms % HOUR_MS == 0 and bucket[1] % HOUR_MS == 0)
    if table is not None and (aligned or bucket[1] >= HOUR_MS):
        whole, edges = split(since_ms, until_ms)
    else:  # buckets shorter than an hour, off hour boundaries: only raw rows can split them
        whole, edges = None, [(since_ms, until_ms)]
    if whole is not None and table is not None:
        # Buckets on hour boundaries are summed in SQL. Otherwise rollups are read per hour
        # and each hour goes to its bucket, except the hours a bucket boundary cuts through,
        # which are read raw like the window's edges.
        by_hour = not aligned
        cuts = _cut_hours(whole, since_ms, bucket[1]) if by_hour else set()
        edges += [(hour, hour + HOUR_MS) for hour in sorted(cuts)]
        with_providers = providers and "provider" in table.c
        group_cols = [*groups, "provider"] if with_providers else list(groups)
        read_bucket = (whole[0], HOUR_MS) if by_hour else bucket
        reads = [(table, *whole)] if "bucket" in groups else periods(table, whole)
        found: list[tuple[tuple[Any, ...], tuple[Stats, int, int, set[str]]]] = []
        for source, lo, hi in reads:
            conds = [_rollup_cond(source, k, v) for k, v in where.items()]
            found += read_stats(
                conn, source, org_id, lo, hi, group_cols, conds, read_bucket, measures
            ).items()
        at = groups.index("bucket") if by_hour else -1
        for full, (stats, first, last, _) in found:
            key = full[: len(groups)]
            if by_hour:
                hour = whole[0] + int(key[at]) * HOUR_MS
                if hour in cuts:
                    continue
                key = (*key[:at], (hour - since_ms) // bucket[1], *key[at + 1 :])
            entry = out.setdefault(_norm(groups, key), Entry())
            entry.stats.merge(stats)
            entry.seen(first, last)
            if with_providers:
                entry.providers.add(full[-1])
    if edges:
        _raw(conn, org_id, edges, groups, where, out, bucket)
    if table is not None and "lat0" not in table.c:
        # no histograms per user or task: no percentiles rather than partial ones
        for entry in out.values():
            entry.stats.latency_hist = [0] * len(entry.stats.latency_hist)
            entry.stats.ttft_hist = [0] * len(entry.stats.ttft_hist)
            entry.stats.tps_hist = [0] * len(entry.stats.tps_hist)
    return out


def _cut_hours(whole: tuple[int, int], since_ms: int, bucket_ms: int) -> set[int]:
    """Starts of the whole hours in ``whole`` that a bucket boundary falls inside."""
    cuts: set[int] = set()
    first = -(-(whole[0] - since_ms) // bucket_ms)  # the first boundary at or after whole[0]
    boundary = since_ms + max(first, 1) * bucket_ms
    while boundary < whole[1]:
        hour = boundary // HOUR_MS * HOUR_MS
        if hour != boundary:
            cuts.add(hour)
        boundary += bucket_ms
    return cuts


def _norm(groups: Sequence[str], key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        int(v) if g == "bucket" else None if g in NULLABLE and v == "" else v
        for g, v in zip(groups, key, strict=True)
    )


def _raw(
    conn: Connection,
    org_id: str,
    ranges: Sequence[tuple[int, int]],
    groups: Sequence[str],
    where: Where,
    out: dict[tuple[Any, ...], Entry],
    bucket: tuple[int, int] = (0, HOUR_MS),
) -> None:
    """Add the raw rows of the time ``ranges`` (``[since, until)`` each) to ``out``.

    One query for up to ``RANGES_PER_QUERY`` ranges: a window's two edges and the hours its
    bucket boundaries cut through would otherwise each pay a statement's overhead, while
    thousands of cut hours (long windows off hour boundaries) in one ``OR`` exceed SQLite's
    expression depth.
    """
    for start in range(0, len(ranges), RANGES_PER_QUERY):
        _raw_ranges(
            conn, org_id, ranges[start : start + RANGES_PER_QUERY], groups, where, out, bucket
        )


def _raw_ranges(
    conn: Connection,
    org_id: str,
    ranges: Sequence[tuple[int, int]],
    groups: Sequence[str],
    where: Where,
    out: dict[tuple[Any, ...], Entry],
    bucket: tuple[int, int],
) -> None:
    spans = [and_(requests.c.created_at >= lo, requests.c.created_at < hi) for lo, hi in ranges]
    conds: list[ColumnElement[bool]] = [
        requests.c.org_id == org_id,
        or_(*spans),
        requests.c.kind == "llm",
    ]
    for name, value in where.items():
        conds.append(_raw_cond(name, value))
    cols: list[ColumnElement[Any]] = []
    for g in groups:
        if g == "bucket":
            index = (requests.c.created_at - bucket[0]) // bucket[1]
            cols.append(index.label("g_bucket"))
        else:
            cols.append(requests.c[g].label(f"g_{g}"))
    query = select(*cols, requests.c.provider.label("g_provider_"), *ROW_COLUMNS).where(
        and_(*conds)
    )
    n = len(groups)
    by_key: dict[tuple[Any, ...], list[Any]] = {}
    for row in conn.execute(query).all():  # fetched at once, grouped by position: cheap rows
        key = tuple(row[:n])
        rows = by_key.get(key)
        if rows is None:
            by_key[key] = [row]
        else:
            rows.append(row)
    for key, rows in by_key.items():
        entry = out.setdefault(key, Entry())
        entry.stats.add_rows(rows)
        times = [row.created_at for row in rows]
        entry.seen(min(times), max(times))
        entry.providers.update(row[n] for row in rows)


def sums(
    conn: Connection,
    org_id: str,
    since_ms: int,
    until_ms: int,
    groups: Sequence[str],
    where: Where | None = None,
    measures: Sequence[str] = ("requests",),
) -> dict[tuple[Any, ...], Stats]:
    """Like :func:`collect` (no buckets), but only the additive ``measures`` of ``Stats`` are
    read from rollups: the cheapest read there is, for tables that show counts, tokens and
    cost, or only rank (each user's top models). The other fields of the ``Stats`` returned
    are left empty, except in the raw rows at the edges."""
    where = where or {}
    if _no_match(where):
        return {}
    table = _table_for(groups, where)
    if table is None:
        entries: dict[tuple[Any, ...], Entry] = {}
        _raw(conn, org_id, [(since_ms, until_ms)], groups, where, entries)
        return {key: entry.stats for key, entry in entries.items()}
    whole, edges = split(since_ms, until_ms)
    out: dict[tuple[Any, ...], Stats] = {}
    for source, lo, hi in periods(table, whole) if whole is not None else ():
        cols = [source.c[g] for g in groups]
        query = (
            select(*cols, *(func.sum(source.c[m]) for m in measures))
            .where(
                source.c.org_id == org_id,
                source.c.hour >= lo,
                source.c.hour < hi,
                *(_rollup_cond(source, k, v) for k, v in where.items()),
            )
            .group_by(*cols)
        )
        n = len(groups)
        for row in conn.execute(query):
            stats = out.setdefault(_norm(groups, tuple(row[:n])), Stats())
            for name, value in zip(measures, row[n:], strict=True):  # PostgreSQL: Decimal
                kind = float if name.endswith("_sum") else int
                setattr(stats, name, getattr(stats, name) + kind(value or 0))
    if edges:
        raw: dict[tuple[Any, ...], Entry] = {}
        _raw(conn, org_id, edges, groups, where, raw)
        for key, entry in raw.items():
            out.setdefault(key, Stats()).merge(entry.stats)
    return out


def distinct_users(
    conn: Connection, org_id: str, since_ms: int, until_ms: int, where: Where | None = None
) -> int:
    """Users with at least one LLM call in the window (and the ``where`` values).

    Read from the user rollup, or the task rollup when a task is among the filters; with a
    filter on anything else the whole window is read raw (through the index on that
    dimension).
    """
    where = where or {}
    if _no_match(where):
        return 0
    table = _table_for(("user_id",), where)
    if table is None:
        whole, edges = None, [(since_ms, until_ms)]
    else:
        whole, edges = split(since_ms, until_ms)
    users: set[str] = set()
    for source, lo, hi in periods(table, whole) if whole is not None else ():
        query = (
            select(source.c.user_id)
            .distinct()
            .where(
                source.c.org_id == org_id,
                source.c.hour >= lo,
                source.c.hour < hi,
                source.c.user_id != "",
                *(_rollup_cond(source, k, v) for k, v in where.items()),
            )
        )
        users.update(r[0] for r in conn.execute(query))
    for lo, hi in edges:
        query = (
            select(requests.c.user_id)
            .distinct()
            .where(
                requests.c.org_id == org_id,
                requests.c.created_at >= lo,
                requests.c.created_at < hi,
                requests.c.kind == "llm",
                requests.c.user_id.is_not(None),
                requests.c.user_id != "",
                *(_raw_cond(k, v) for k, v in where.items()),
            )
        )
        users.update(r[0] for r in conn.execute(query))
    return len(users)
