"""Hourly rollups: what the dashboards read so they stay fast at millions of requests.

All keyed by organization and hour: ``rollup_hourly`` per provider, upstream and model (with
latency histograms), ``rollup_user_hourly`` per user, ``rollup_task_hourly`` per Open WebUI
task, model and user, and three projections of it, one per pair of those dimensions
(``rollup_task_model_hourly``, ``rollup_task_user_hourly``, ``rollup_user_model_hourly``):
the Dashboard's task share, the Tasks page and each user's top models read a table a few times
smaller than the three-way one (which keeps answering questions about all three). All but
``rollup_hourly`` keep sums only, so they stay small with many users; on SQLite the
projections are clustered by their key (WITHOUT ROWID), so a window is read in place. Each
row holds mergeable aggregates (counts, sums, histogram buckets of latency and time to first
token), so any set of hours and any grouping is a sum. The per-user table and the pairs also
have a daily twin (``DAILY``: the same rows summed per UTC day, ``hour`` holding the day's
first hour), which a long window reads for its whole days: 30 days of a busy organization are
tens of thousands of user-hours but a few thousand user-days. The writer adds each batch's new
records (once per record id) to every table; ``rebuild`` recomputes a time range from raw rows
in SQL (the daily twins from their hourly tables), after a cost recompute and when migrating
existing data.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    inspect,
    literal,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from heliograph.store.schema import metadata, requests
from heliograph.store.stats import (
    BUCKETS_MS,
    COLD_START_MS,
    MEASURES,
    NBUCKETS,
    NTPS,
    TPS_BUCKETS,
    Stats,
    bucket_of,
    tps_bucket_of,
)

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SUMS = MEASURES
LAT = tuple(f"lat{i}" for i in range(NBUCKETS))
TTFT = tuple(f"ttft{i}" for i in range(NBUCKETS))
TPS = tuple(f"tps{i}" for i in range(NTPS))  # output tokens/s histogram (migration 0008)


def _measures(histograms: bool = True) -> list[Column[Any]]:
    cols: list[Column[Any]] = [
        Column(name, Float if name.endswith("_sum") else BigInteger, nullable=False)
        for name in SUMS
    ]
    cols += [
        Column("first_ms", BigInteger, nullable=False),
        Column("last_ms", BigInteger, nullable=False),
    ]
    if histograms:
        cols += [Column(name, BigInteger, nullable=False) for name in LAT + TTFT + TPS]
    return cols


rollup_hourly = Table(
    "rollup_hourly",
    metadata,
    Column("org_id", String(36), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("upstream", String(64), primary_key=True),
    Column("model", String(255), primary_key=True),
    *_measures(),
)
rollup_user_hourly = Table(
    "rollup_user_hourly",
    metadata,
    Column("org_id", String(36), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("user_id", String(255), primary_key=True),
    *_measures(histograms=False),  # kept lean: one row per active user and hour
    sqlite_with_rowid=False,  # migration 0009
)
rollup_task_hourly = Table(
    "rollup_task_hourly",
    metadata,
    Column("org_id", String(36), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("task", String(40), primary_key=True),  # "" for a chat (no Open WebUI task)
    Column("model", String(255), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    *_measures(histograms=False),  # what background tasks cost, per user and model
)
PAIRS = {  # the task rollup's projections: table name -> its two dimensions
    "rollup_task_model_hourly": ("task", "model"),
    "rollup_task_user_hourly": ("task", "user_id"),
    "rollup_user_model_hourly": ("user_id", "model"),
}
DIMENSION_TYPES = {"task": String(40), "model": String(255), "user_id": String(255)}


def _lean_table(name: str, dims: tuple[str, ...]) -> Table:
    return Table(
        name,
        metadata,
        Column("org_id", String(36), primary_key=True),
        Column("hour", BigInteger, primary_key=True),
        *(Column(d, DIMENSION_TYPES[d], primary_key=True) for d in dims),
        *_measures(histograms=False),
        sqlite_with_rowid=False,
    )


rollup_task_model_hourly, rollup_task_user_hourly, rollup_user_model_hourly = (
    _lean_table(name, dims) for name, dims in PAIRS.items()
)
LEAN_DIMS = {"rollup_user_hourly": ("user_id",), **PAIRS}
DAILY = {name.replace("_hourly", "_daily"): name for name in LEAN_DIMS}  # daily -> hourly
DAILY_OF = {hourly: daily for daily, hourly in DAILY.items()}
DAILY_TABLES = {daily: _lean_table(daily, LEAN_DIMS[hourly]) for daily, hourly in DAILY.items()}
KEYS = {
    "rollup_hourly": ("org_id", "hour", "provider", "upstream", "model"),
    "rollup_user_hourly": ("org_id", "hour", "user_id"),
    "rollup_task_hourly": ("org_id", "hour", "task", "model", "user_id"),
    **{name: ("org_id", "hour", *dims) for name, dims in PAIRS.items()},
    **{daily: ("org_id", "hour", *LEAN_DIMS[hourly]) for daily, hourly in DAILY.items()},
}


# A group's measures in memory: one list, positions as in FIELDS (cheaper than a dict per
# record: a batch of 2,000 records adds into a handful of groups).
FIELDS = (*SUMS, "first_ms", "last_ms", *LAT, *TTFT, *TPS)
_AT = {name: i for i, name in enumerate(FIELDS)}
_FIRST, _LAST = _AT["first_ms"], _AT["last_ms"]
_LAT0, _TTFT0, _TPS0 = _AT[LAT[0]], _AT[TTFT[0]], _AT[TPS[0]]
_HEAD = len(SUMS)  # the sums come first; first/last and the histograms follow


def _zero(ts: int) -> list[Any]:
    out: list[Any] = [0] * len(FIELDS)
    for name in ("latency_sum", "ttft_sum", "tps_sum", "ptps_sum", "cold_load_sum"):
        out[_AT[name]] = 0.0
    out[_FIRST] = out[_LAST] = ts
    return out


def _sums(row: dict[str, Any]) -> list[Any]:
    """One request row as the measures it adds (positions as in SUMS)."""
    latency, ttft, tps = row.get("latency_ms"), row.get("ttft_ms"), row.get("output_tokens_per_s")
    ptps, load = row.get("prompt_tokens_per_s"), row.get("load_ms")
    cold_ms = float(load) if load is not None and load > COLD_START_MS else 0.0
    known = bool(row.get("cost_known"))
    return [
        1,
        1 if row.get("state") in ("error", "interrupted") else 0,
        row.get("prompt_tokens") or 0,
        row.get("completion_tokens") or 0,
        row.get("cached_tokens") or 0,
        (row.get("cost_nusd") or 0) if known else 0,
        0 if known else 1,
        0.0 if latency is None else float(latency),
        0 if latency is None else 1,
        0.0 if ttft is None else float(ttft),
        0 if ttft is None else 1,
        0.0 if tps is None else float(tps),
        0 if tps is None else 1,
        0.0 if ptps is None else float(ptps),
        0 if ptps is None else 1,
        1 if cold_ms else 0,
        cold_ms,
    ]


def _add(into: list[Any], sums: list[Any], first_ms: int, last_ms: int) -> None:
    into[: len(sums)] = map(operator.add, into, sums)  # into[i] + sums[i], summed in C
    if first_ms < into[_FIRST]:
        into[_FIRST] = first_ms
    if last_ms > into[_LAST]:
        into[_LAST] = last_ms


Groups = dict[str, dict[tuple[Any, ...], list[Any]]]
"""Per rollup table: summed measures (positions as in FIELDS) per key; what a batch adds."""


def group(rows: Iterable[dict[str, Any]]) -> Groups:
    """Sum request rows (LLM calls only) per rollup key; pure, so helper processes can do it."""
    groups: Groups = {t: {} for t in KEYS}
    hourly, per_user = groups["rollup_hourly"], groups["rollup_user_hourly"]
    per_task = groups["rollup_task_hourly"]
    for row in rows:
        if row.get("kind") != "llm":
            continue
        ts = row["created_at"]
        hour = ts // HOUR_MS * HOUR_MS
        sums = _sums(row)
        org = row["org_id"]
        latency, ttft, tps = (
            row.get("latency_ms"),
            row.get("ttft_ms"),
            row.get("output_tokens_per_s"),
        )
        model, user, task = row.get("model") or "", row.get("user_id") or "", row.get("task") or ""
        for into_table, key, hist in (
            (hourly, (org, hour, row["provider"], row["upstream"], model), True),
            (per_user, (org, hour, user), False),
            (per_task, (org, hour, task, model, user), False),
        ):
            into = into_table.get(key)
            if into is None:
                into = into_table[key] = _zero(ts)
            _add(into, sums, ts, ts)
            if hist and latency is not None:
                into[_LAT0 + bucket_of(latency)] += 1
            if hist and ttft is not None:
                into[_TTFT0 + bucket_of(ttft)] += 1
            if hist and tps is not None:
                into[_TPS0 + tps_bucket_of(tps)] += 1
    _project(per_task, groups)
    for daily_name, hourly_name in DAILY.items():
        _by_day(groups[hourly_name], groups[daily_name])
    return groups


def _by_day(
    hourly: dict[tuple[Any, ...], list[Any]], into: dict[tuple[Any, ...], list[Any]]
) -> None:
    """Hourly groups (lean: sums, first and last only) summed per UTC day."""
    for key, measures in hourly.items():
        day = (key[0], key[1] // DAY_MS * DAY_MS, *key[2:])
        mine = into.get(day)
        if mine is None:
            into[day] = list(measures)
        else:
            _add(mine, measures[:_HEAD], measures[_FIRST], measures[_LAST])


_TASK_KEY = ("task", "model", "user_id")  # after org and hour in rollup_task_hourly's key


def _project(per_task: dict[tuple[Any, ...], list[Any]], groups: Groups) -> None:
    """The pair tables' groups, summed from the three-way groups (one step per group, not
    per record: a batch's records fall in far fewer groups)."""
    for name, dims in PAIRS.items():
        at = [2 + _TASK_KEY.index(d) for d in dims]
        target = groups[name]
        for key, measures in per_task.items():
            pair = (key[0], key[1], key[at[0]], key[at[1]])
            into = target.get(pair)
            if into is None:
                target[pair] = list(measures)
            else:
                _add(into, measures[:_HEAD], measures[_FIRST], measures[_LAST])


def merge_groups(into: Groups, other: Groups) -> None:
    """Add ``other`` into ``into`` (both from :func:`group`)."""
    for table, items in other.items():
        target = into.setdefault(table, {})
        for key, measures in items.items():
            mine = target.get(key)
            if mine is None:
                target[key] = measures
            else:  # every measure added (in C), then first and last put right
                first, last = min(mine[_FIRST], measures[_FIRST]), max(mine[_LAST], measures[_LAST])
                mine[:] = map(operator.add, mine, measures)
                mine[_FIRST], mine[_LAST] = first, last


def upsert_groups(conn: Connection, groups: Groups) -> None:
    """Add summed measures to the rollup tables, inside the caller's transaction."""
    for table_name, items in groups.items():
        if items:
            sql, positions = _upsert_sql(conn.dialect.name, table_name)
            rows = [(*key, *[v[i] for i in positions]) for key, v in items.items()]
            conn.exec_driver_sql(sql, rows)


def add_records(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Add new request rows (LLM calls only) to both rollups, inside the caller's transaction."""
    upsert_groups(conn, group(rows))


@functools.cache
def _upsert_sql(dialect: str, table_name: str) -> tuple[str, tuple[int, ...]]:
    """The upsert statement for a rollup table, and which FIELDS positions it binds.

    Written once per table as driver SQL: building and compiling the SQLAlchemy statement
    (sixty columns) on every batch cost more than the upsert itself. Identifiers come from
    the table definitions; values are bound.
    """
    table = metadata.tables[table_name]
    keys = KEYS[table_name]
    names = [n for n in FIELDS if n in table.c]
    mark = "%s" if dialect == "postgresql" else "?"
    low, high = ("LEAST", "GREATEST") if dialect == "postgresql" else ("min", "max")
    summed = [n for n in names if n not in ("first_ms", "last_ms")]
    updates = [f'"{n}" = "{table_name}"."{n}" + excluded."{n}"' for n in summed]
    updates += [
        f'"first_ms" = {low}("{table_name}"."first_ms", excluded."first_ms")',
        f'"last_ms" = {high}("{table_name}"."last_ms", excluded."last_ms")',
    ]
    columns = ", ".join(f'"{n}"' for n in (*keys, *names))
    marks = ", ".join([mark] * (len(keys) + len(names)))
    conflict = ", ".join(f'"{k}"' for k in keys)
    sql = (
        f'INSERT INTO "{table_name}" ({columns}) VALUES ({marks})'  # noqa: S608
        f" ON CONFLICT ({conflict}) DO UPDATE SET {', '.join(updates)}"
    )
    return sql, tuple(_AT[n] for n in names)


def _task() -> ColumnElement[Any]:
    return func.coalesce(requests.c.task, literal("")).label("task")


def _bucket_index(
    column: ColumnElement[Any], bounds: Sequence[float] = BUCKETS_MS
) -> ColumnElement[Any]:
    whens = [(column <= bound, i) for i, bound in enumerate(bounds)]
    return case(*whens, else_=len(bounds))


def rebuild(
    conn: Connection,
    since_ms: int | None = None,
    until_ms: int | None = None,
    tables: Sequence[str] = tuple(KEYS),
) -> None:
    """Recompute the rollups for the hours in [since, until) from raw rows, in SQL
    (``tables``: a migration rebuilds only the tables that exist at its revision)."""
    since_hour = None if since_ms is None else since_ms // HOUR_MS * HOUR_MS
    until_hour = None if until_ms is None else -(-until_ms // HOUR_MS) * HOUR_MS
    hour = (requests.c.created_at // HOUR_MS * HOUR_MS).label("hour")
    conds = [requests.c.kind == "llm"]
    if since_hour is not None:
        conds.append(requests.c.created_at >= since_hour)
    if until_hour is not None:
        conds.append(requests.c.created_at < until_hour)
    known = requests.c.cost_known.is_(True)
    lat_idx = _bucket_index(requests.c.latency_ms)
    ttft_idx = _bucket_index(requests.c.ttft_ms)
    measures: list[ColumnElement[Any]] = [
        func.count().label("requests"),
        func.sum(case((requests.c.state.in_(("error", "interrupted")), 1), else_=0)).label(
            "errors"
        ),
        func.coalesce(func.sum(requests.c.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(requests.c.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(requests.c.cached_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(case((known, requests.c.cost_nusd), else_=0)), 0).label("cost_nusd"),
        func.sum(case((known, 0), else_=1)).label("unpriced"),
        func.coalesce(func.sum(requests.c.latency_ms), 0.0).label("latency_sum"),
        func.count(requests.c.latency_ms).label("latency_n"),
        func.coalesce(func.sum(requests.c.ttft_ms), 0.0).label("ttft_sum"),
        func.count(requests.c.ttft_ms).label("ttft_n"),
        func.coalesce(func.sum(requests.c.output_tokens_per_s), 0.0).label("tps_sum"),
        func.count(requests.c.output_tokens_per_s).label("tps_n"),
        func.coalesce(func.sum(requests.c.prompt_tokens_per_s), 0.0).label("ptps_sum"),
        func.count(requests.c.prompt_tokens_per_s).label("ptps_n"),
        func.sum(case((requests.c.load_ms > COLD_START_MS, 1), else_=0)).label("cold_n"),
        func.coalesce(
            func.sum(case((requests.c.load_ms > COLD_START_MS, requests.c.load_ms), else_=0.0)),
            0.0,
        ).label("cold_load_sum"),
        func.min(requests.c.created_at).label("first_ms"),
        func.max(requests.c.created_at).label("last_ms"),
    ]
    for i in range(NBUCKETS):
        has_lat = and_(requests.c.latency_ms.is_not(None), lat_idx == i)
        measures.append(func.sum(case((has_lat, 1), else_=0)).label(LAT[i]))
    for i in range(NBUCKETS):
        has_ttft = and_(requests.c.ttft_ms.is_not(None), ttft_idx == i)
        measures.append(func.sum(case((has_ttft, 1), else_=0)).label(TTFT[i]))
    tps_idx = _bucket_index(requests.c.output_tokens_per_s, TPS_BUCKETS)
    for i in range(NTPS):
        has_tps = and_(requests.c.output_tokens_per_s.is_not(None), tps_idx == i)
        measures.append(func.sum(case((has_tps, 1), else_=0)).label(TPS[i]))
    model = func.coalesce(requests.c.model, literal("")).label("model")
    user = func.coalesce(requests.c.user_id, literal("")).label("user_id")
    dim = {"task": _task(), "model": model, "user_id": user}
    plans: list[tuple[Table, list[ColumnElement[Any]]]] = [
        (rollup_hourly, [requests.c.org_id, hour, requests.c.provider, requests.c.upstream, model]),
        (rollup_user_hourly, [requests.c.org_id, hour, user]),
        (rollup_task_hourly, [requests.c.org_id, hour, _task(), model, user]),
        *(
            (metadata.tables[name], [requests.c.org_id, hour, *(dim[d] for d in dims)])
            for name, dims in PAIRS.items()
        ),
    ]
    for table, dims in plans:
        if table.name not in tables:
            continue
        clear = delete(table)
        if since_hour is not None:
            clear = clear.where(table.c.hour >= since_hour)
        if until_hour is not None:
            clear = clear.where(table.c.hour < until_hour)
        conn.execute(clear)
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        kept = [m for m in measures if m.name in present]  # as of the caller's revision
        query = select(*dims, *kept).where(*conds).group_by(*dims)
        names = [*KEYS[table.name], *(m.name for m in kept)]
        conn.execute(insert(table).from_select(names, query))
    for daily, hourly in DAILY.items():
        if daily in tables:
            _rebuild_daily(conn, daily, hourly, since_hour, until_hour)


def _rebuild_daily(
    conn: Connection, daily: str, hourly: str, since_hour: int | None, until_hour: int | None
) -> None:
    """A daily twin's whole days around [since, until) summed again from its hourly table."""
    table, source = metadata.tables[daily], metadata.tables[hourly]
    day = (source.c.hour // DAY_MS * DAY_MS).label("hour")
    clear, conds = delete(table), []
    if since_hour is not None:
        since_day = since_hour // DAY_MS * DAY_MS
        clear = clear.where(table.c.hour >= since_day)
        conds.append(source.c.hour >= since_day)
    if until_hour is not None:
        until_day = -(-until_hour // DAY_MS) * DAY_MS
        clear = clear.where(table.c.hour < until_day)
        conds.append(source.c.hour < until_day)
    conn.execute(clear)
    dims = [source.c.org_id, day, *(source.c[d] for d in LEAN_DIMS[hourly])]
    present = {c["name"] for c in inspect(conn).get_columns(daily)}
    sums = [func.sum(source.c[n]).label(n) for n in SUMS if n in present]
    spans = [
        func.min(source.c.first_ms).label("first_ms"),
        func.max(source.c.last_ms).label("last_ms"),
    ]
    query = select(*dims, *sums, *spans).where(*conds).group_by(*dims)
    names = [*KEYS[daily], *(c.name for c in (*sums, *spans))]
    conn.execute(insert(table).from_select(names, query))


def read_stats(
    conn: Connection,
    table: Table,
    org_id: str,
    since_hour: int,
    until_hour: int,
    groups: Sequence[str] = (),
    where: Sequence[ColumnElement[bool]] = (),
    bucket: tuple[int, int] | None = None,
    measures: Sequence[str] | None = None,
) -> dict[tuple[Any, ...], tuple[Stats, int, int, set[str]]]:
    """Summed rollup rows for whole hours, per combination of ``groups`` column values.

    The group name "bucket" means the time bucket index ``(hour - start) // size`` for
    ``bucket=(start, size)``, so a 30-day chart sums in SQL to 30 rows. ``measures`` (names of
    ``Stats`` sums; None: all, with the histograms) limits what is summed to what the caller
    shows: each sum costs on every row read, and the histograms are seventy columns.
    """
    exprs = [
        (table.c.hour - bucket[0]) // bucket[1] if g == "bucket" and bucket else table.c[g]
        for g in groups
    ]
    keys = [e.label(f"k{i}") for i, e in enumerate(exprs)]
    histograms = measures is None and LAT[0] in table.c
    names = [n for n in (SUMS if measures is None else measures) if n in table.c]
    if histograms:
        names += [n for n in LAT + TTFT + TPS if n in table.c]
    query = select(
        *keys,
        func.min(table.c.first_ms).label("first_ms"),
        func.max(table.c.last_ms).label("last_ms"),
        *(func.sum(table.c[n]).label(n) for n in names),
    ).where(table.c.org_id == org_id, table.c.hour >= since_hour, table.c.hour < until_hour, *where)
    if keys:
        query = query.group_by(*exprs)
    out: dict[tuple[Any, ...], tuple[Stats, int, int, set[str]]] = {}
    sums = [n for n in SUMS if n in names]
    for row in conn.execute(query):
        if row.first_ms is None:
            continue
        key = tuple(row._mapping[f"k{i}"] for i in range(len(groups)))
        stats = stats_from(row, histograms, sums)
        out[key] = (stats, int(row.first_ms), int(row.last_ms), set())
    return out


def stats_from(row: Any, histograms: bool = True, sums: Sequence[str] = SUMS) -> Stats:
    """A rollup row's ``sums`` as Stats; ``histograms`` False for the lean (per user, per task)
    tables, whose rows have no histogram columns to look up (a missed key is slow), and for
    reads that did not ask for them."""
    m = row._mapping
    if histograms:
        stats = Stats(
            latency_hist=[int(m[n] or 0) for n in LAT],
            ttft_hist=[int(m[n] or 0) for n in TTFT],
            tps_hist=[int(m[n] or 0) for n in TPS],
        )
    else:
        stats = Stats()
    for name in sums:
        setattr(stats, name, (float if name.endswith("_sum") else int)(m[name] or 0))
    return stats
