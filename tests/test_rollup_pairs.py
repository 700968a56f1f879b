"""The task rollup's pair projections and the lean tables' daily twins: each holds exactly
its source summed (over the missing dimension, over the day's hours), the writer and the SQL
rebuild agree, every pair of dimensions reads the smallest table that has them, long windows
read whole days from the daily twins with the same numbers as raw rows, and ``measures``
reads only what was asked; on both dialects."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import select

from heliograph.store import aggregate, rollups, tasks
from heliograph.store.engine import make_engine, migrate
from heliograph.store.inserts import insert_records
from test_rollups import HOUR, ORG, T0, make_row

SUMMED = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_nusd", "unpriced")


def _rows() -> list[dict[str, Any]]:
    rng = random.Random(11)
    names = [None, None, "title_generation", "tags_generation"]
    return [
        make_row(rng, T0 + rng.randint(0, 5 * HOUR - 1), task=rng.choice(names)) for _ in range(500)
    ]


def _projected(conn: Any, dims: tuple[str, ...]) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """The three-way task rollup summed down to ``dims`` (per org and hour)."""
    table = rollups.rollup_task_hourly
    out: dict[tuple[Any, ...], tuple[int, ...]] = {}
    for row in conn.execute(select(table)):
        m = row._mapping
        key = (m["org_id"], m["hour"], *(m[d] for d in dims))
        old = out.get(key, (0,) * len(SUMMED))
        out[key] = tuple(a + int(m[n]) for a, n in zip(old, SUMMED, strict=True))
    return out


def _stored(conn: Any, name: str) -> dict[tuple[Any, ...], tuple[int, ...]]:
    table = rollups.metadata.tables[name]
    keys = rollups.KEYS[name]
    return {
        tuple(r._mapping[k] for k in keys): tuple(int(r._mapping[n]) for n in SUMMED)
        for r in conn.execute(select(table))
    }


def test_pairs_are_the_task_rollup_summed(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    rows = _rows()
    with engine.begin() as conn:
        insert_records(conn, rows[:300], [], [])
    with engine.begin() as conn:  # a replayed batch counts once
        insert_records(conn, rows, [], [])
    with engine.connect() as conn:
        incremental = {name: _stored(conn, name) for name in rollups.PAIRS}
        for name, dims in rollups.PAIRS.items():
            assert incremental[name] == _projected(conn, dims), name
            assert incremental[name]
    with engine.begin() as conn:
        rollups.rebuild(conn)
    with engine.connect() as conn:
        assert {name: _stored(conn, name) for name in rollups.PAIRS} == incremental
    engine.dispose()


@pytest.mark.parametrize(
    ("dims", "table"),
    [
        (("model",), "rollup_hourly"),
        (("user_id",), "rollup_user_hourly"),
        (("task",), "rollup_task_model_hourly"),
        (("task", "model"), "rollup_task_model_hourly"),
        (("task", "user_id"), "rollup_task_user_hourly"),
        (("user_id", "model"), "rollup_user_model_hourly"),
        (("task", "model", "user_id"), "rollup_task_hourly"),
    ],
)
def test_the_smallest_table_that_has_the_dimensions(dims: tuple[str, ...], table: str) -> None:
    assert aggregate._table_for(dims, {}).name == table
    assert aggregate._table_for(dims[1:], {dims[0]: "x"}).name == table


def test_pages_read_the_same_numbers_from_pairs(db_url: str) -> None:
    """Sums by each pair (and the Tasks report) equal those from raw rows, ragged edges too."""
    engine = make_engine(db_url)
    migrate(engine)
    rows = _rows()
    with engine.begin() as conn:
        insert_records(conn, rows, [], [])
    since, until = T0 + 777, T0 + 4 * HOUR + 99
    with engine.connect() as conn:
        for dims in (("task", "model"), ("task", "user_id"), ("user_id", "model"), ("task",)):
            got = aggregate.sums(conn, ORG, since, until, dims, None, SUMMED)
            raw: dict[Any, aggregate.Entry] = {}
            aggregate._raw(conn, ORG, [(since, until)], dims, {}, raw)
            want = {k: tuple(getattr(e.stats, n) for n in SUMMED) for k, e in raw.items()}
            assert {k: tuple(getattr(s, n) for n in SUMMED) for k, s in got.items()} == want
        only = aggregate.sums(conn, ORG, since, until, ("task",), tasks.ONLY_TASKS, SUMMED)
        assert set(only) == {("title_generation",), ("tags_generation",)}
        # measures: only the sums asked for are read (the rest stay empty), no histograms
        lean = aggregate.collect(conn, ORG, T0, T0 + 5 * HOUR, ("model",), measures=("requests",))
        full = aggregate.collect(conn, ORG, T0, T0 + 5 * HOUR, ("model",))
        assert {k: e.stats.requests for k, e in lean.items()} == {
            k: e.stats.requests for k, e in full.items()
        }
        assert all(
            e.stats.prompt_tokens == 0 and not any(e.stats.latency_hist) for e in lean.values()
        )
        assert any(any(e.stats.latency_hist) for e in full.values())
    report = tasks.report(engine, ORG, since, until)
    llm = [r for r in rows if r["kind"] == "llm" and since <= r["created_at"] < until]
    task_rows = [r for r in llm if r["task"]]
    assert report["totals"]["tasks"]["requests"] == len(task_rows)
    assert report["totals"]["all"]["requests"] == len(llm)
    per_user = {r["key"]: r["tasks"]["requests"] for r in report["by_user"]}
    for user in {r["user_id"] for r in task_rows}:
        assert per_user[user] == sum(1 for r in task_rows if r["user_id"] == user)
    per_model = {r["key"]: r["tasks"]["requests"] for r in report["by_model"]}
    for model in {r["model"] for r in task_rows}:
        assert per_model[model] == sum(1 for r in task_rows if r["model"] == model)
    engine.dispose()


def _daily_from_hourly(conn: Any, hourly: str) -> dict[tuple[Any, ...], tuple[int, ...]]:
    table = rollups.metadata.tables[hourly]
    keys = rollups.KEYS[hourly]
    out: dict[tuple[Any, ...], tuple[int, ...]] = {}
    for row in conn.execute(select(table)):
        m = row._mapping
        key = tuple(m[k] // rollups.DAY_MS * rollups.DAY_MS if k == "hour" else m[k] for k in keys)
        old = out.get(key, (0,) * len(SUMMED))
        out[key] = tuple(a + int(m[n]) for a, n in zip(old, SUMMED, strict=True))
    return out


def test_daily_twins_serve_long_windows(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    rng = random.Random(5)
    day = rollups.DAY_MS
    start = T0 // day * day
    names = [None, "title_generation"]
    rows = [
        make_row(rng, start + rng.randint(0, 4 * day - 1), task=rng.choice(names))
        for _ in range(800)
    ]
    with engine.begin() as conn:
        insert_records(conn, rows[:500], [], [])
    with engine.begin() as conn:
        insert_records(conn, rows, [], [])
    with engine.connect() as conn:
        incremental = {d: _stored(conn, d) for d in rollups.DAILY}
        for daily, hourly in rollups.DAILY.items():
            assert incremental[daily] == _daily_from_hourly(conn, hourly), daily
            assert len(incremental[daily]) < len(_stored(conn, hourly))
    with engine.begin() as conn:
        rollups.rebuild(conn, start + day + 5, start + 2 * day + 7)  # whole days around it
    with engine.connect() as conn:
        assert {d: _stored(conn, d) for d in rollups.DAILY} == incremental
    since, until = start + 5 * HOUR + 123, start + 3 * day + 7 * HOUR + 45  # two whole days
    reads = aggregate.periods(rollups.rollup_user_hourly, (start + 6 * HOUR, start + 3 * day))
    assert [(t.name, lo, hi) for t, lo, hi in reads] == [
        ("rollup_user_daily", start + day, start + 3 * day),
        ("rollup_user_hourly", start + 6 * HOUR, start + day),
    ]
    with engine.connect() as conn:
        for dims in (("user_id",), ("task", "model"), ("task", "user_id"), ("user_id", "model")):
            got = aggregate.sums(conn, ORG, since, until, dims, None, SUMMED)
            raw: dict[Any, aggregate.Entry] = {}
            aggregate._raw(conn, ORG, [(since, until)], dims, {}, raw)
            want = {k: tuple(getattr(e.stats, n) for n in SUMMED) for k, e in raw.items()}
            assert {k: tuple(getattr(s, n) for n in SUMMED) for k, s in got.items()} == want, dims
        collected = aggregate.collect(conn, ORG, since, until, ("user_id",))
        raw = {}
        aggregate._raw(conn, ORG, [(since, until)], ("user_id",), {}, raw)
        for key, entry in raw.items():
            assert collected[key].stats.requests == entry.stats.requests
            assert collected[key].stats.latency_n == entry.stats.latency_n
            assert (collected[key].first_ms, collected[key].last_ms) == (
                entry.first_ms,
                entry.last_ms,
            )
        users = {
            r["user_id"] for r in rows if r["kind"] == "llm" and since <= r["created_at"] < until
        }
        assert aggregate.distinct_users(conn, ORG, since, until) == len(users - {None})
    engine.dispose()
