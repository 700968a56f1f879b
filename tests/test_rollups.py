"""Hourly rollups give exactly what raw rows give, on both dialects, and never double count."""

from __future__ import annotations

import random
import uuid
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select

from heliograph.store import aggregate, analytics, rollups
from heliograph.store.engine import make_engine, migrate
from heliograph.store.inserts import insert_records
from heliograph.store.stats import COLD_START_MS, Stats, bucket_of, tps_bucket_of

HOUR = 3_600_000
T0 = 1_790_000_000_000 // HOUR * HOUR  # an hour boundary
ORG = "org-1"


def make_row(rng: random.Random, at: int, **over: Any) -> dict[str, Any]:
    state = rng.choice(["ok"] * 8 + ["error", "interrupted"])
    known = rng.random() < 0.8
    row = {
        "id": str(uuid.uuid4()),
        "org_id": ORG,
        "key_id": None,
        "created_at": at,
        "kind": rng.choice(["llm"] * 9 + ["other"]),
        "provider": rng.choice(["openai", "ollama"]),
        "upstream": "up",
        "method": "POST",
        "endpoint": "/chat/completions",
        "model": rng.choice(["gpt-4o", "gpt-4o-mini", None]),
        "response_model": None,
        "stream": False,
        "status": 200 if state == "ok" else 500,
        "state": state,
        "error": None,
        "latency_ms": rng.choice([None, rng.uniform(1, 90000)]),
        "ttft_ms": rng.choice([None, rng.uniform(1, 5000)]),
        "output_tokens_per_s": rng.choice([None, rng.uniform(1, 200), rng.uniform(0.1, 3000)]),
        "prompt_tokens_per_s": rng.choice([None, rng.uniform(10, 5000)]),
        "load_ms": rng.choice([None, rng.uniform(0, 900), rng.uniform(1000, 20000)]),
        "prompt_tokens": rng.randint(0, 5000),
        "completion_tokens": rng.randint(0, 900),
        "total_tokens": None,
        "cached_tokens": rng.randint(0, 100),
        "reasoning_tokens": None,
        "cost_nusd": rng.randint(0, 10**7) if known else None,
        "cost_known": known,
        "user_id": rng.choice(["alice", "bob", None]),
        "session_id": None,
        "properties": None,
        "protocol": "openai",
    }
    row.update(over)
    return row


def add_plain(stats: Stats, row: Any) -> None:
    """One row into ``stats``, written the plain way: the reference for the store's sums."""
    stats.requests += 1
    stats.errors += 1 if row.state in ("error", "interrupted") else 0
    stats.prompt_tokens += row.prompt_tokens or 0
    stats.completion_tokens += row.completion_tokens or 0
    stats.cached_tokens += row.cached_tokens or 0
    if row.cost_known:
        stats.cost_nusd += row.cost_nusd or 0
    else:
        stats.unpriced += 1
    if row.latency_ms is not None:
        stats.latency_sum += row.latency_ms
        stats.latency_n += 1
        stats.latency_hist[bucket_of(row.latency_ms)] += 1
    if row.ttft_ms is not None:
        stats.ttft_sum += row.ttft_ms
        stats.ttft_n += 1
        stats.ttft_hist[bucket_of(row.ttft_ms)] += 1
    if row.output_tokens_per_s is not None:
        stats.tps_sum += row.output_tokens_per_s
        stats.tps_n += 1
        stats.tps_hist[tps_bucket_of(row.output_tokens_per_s)] += 1
    if row.prompt_tokens_per_s is not None:
        stats.ptps_sum += row.prompt_tokens_per_s
        stats.ptps_n += 1
    if row.load_ms is not None and row.load_ms > COLD_START_MS:
        stats.cold_n += 1
        stats.cold_load_sum += row.load_ms


def reference(
    rows: list[dict[str, Any]],
    since: int,
    until: int,
    groups: tuple[str, ...] = (),
    bucket: tuple[int, int] = (0, HOUR),
    where: dict[str, str] | None = None,
) -> dict[Any, Any]:
    """The same aggregation in plain Python over the rows as inserted (no SQL, no rollups)."""
    out: dict[Any, Stats] = {}
    for row in rows:
        if row["kind"] != "llm" or not since <= row["created_at"] < until:
            continue
        if any(row[k] != v for k, v in (where or {}).items()):
            continue
        key = tuple(
            (row["created_at"] - bucket[0]) // bucket[1] if g == "bucket" else row[g]
            for g in groups
        )
        add_plain(out.setdefault(key, Stats()), SimpleNamespace(**row))
    return {k: v.to_api() for k, v in out.items()}


def raw_path(conn: Any, since: int, until: int, groups: tuple[str, ...], **kw: Any) -> Any:
    """The store's raw-rows path alone (no rollups)."""
    out: dict[Any, aggregate.Entry] = {}
    aggregate._raw(
        conn, ORG, [(since, until)], groups, kw.get("where", {}), out, kw.get("bucket", (0, HOUR))
    )
    return {k: v.stats.to_api() for k, v in out.items()}


def test_rollups_match_raw_rows_and_are_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    rng = random.Random(7)
    rows = [make_row(rng, T0 + rng.randint(0, 6 * HOUR - 1)) for _ in range(600)]
    with engine.begin() as conn:
        assert len(insert_records(conn, rows[:400], [], [])) == 400
    with engine.begin() as conn:  # a replayed batch: only the 200 new ones count
        assert len(insert_records(conn, rows, [], [])) == 200
    since, until = T0 + 1234, T0 + 5 * HOUR + 777  # ragged edges on both sides
    with engine.connect() as conn:
        got = {k: v.stats.to_api() for k, v in aggregate.collect(conn, ORG, since, until).items()}
        assert got == reference(rows, since, until)
        assert raw_path(conn, since, until, ()) == reference(rows, since, until)
        for dims in (("model",), ("provider",), ("user_id",)):
            got = {
                k: v.stats.to_api()
                for k, v in aggregate.collect(conn, ORG, since, until, dims).items()
            }
            expected = reference(rows, since, until, dims)
            assert raw_path(conn, since, until, dims) == expected, dims
            if dims == ("user_id",):  # per-user rollups keep no histograms: no percentiles
                for value in expected.values():
                    value.update(p50_latency_ms=None, p95_latency_ms=None, p50_ttft_ms=None)
                    value.update(p95_ttft_ms=None, p50_output_tokens_per_s=None)
                    value.update(p10_output_tokens_per_s=None)
            assert got == expected, dims
        aligned = (T0, T0 + 6 * HOUR)
        got = {
            k: v.stats.to_api()
            for k, v in aggregate.collect(
                conn, ORG, *aligned, ("model", "bucket"), bucket_ms=2 * HOUR
            ).items()
        }
        assert got == reference(rows, *aligned, ("model", "bucket"), (T0, 2 * HOUR))
        assert {k[1] for k in got} == {0, 1, 2}
        # Buckets off hour boundaries: rollups per hour, raw rows for the hours a bucket
        # boundary cuts through and for the edges; the same numbers as the rows themselves.
        for bucket_ms in (HOUR, 2 * HOUR + 7 * 60_000, 90 * 60_000, 25 * 60_000):
            for dims in (("bucket",), ("model", "bucket")):
                got = {
                    k: v.stats.to_api()
                    for k, v in aggregate.collect(
                        conn, ORG, since, until, dims, bucket_ms=bucket_ms
                    ).items()
                }
                want = reference(rows, since, until, dims, (since, bucket_ms))
                assert got == want, (bucket_ms, dims)
                assert raw_path(conn, since, until, dims, bucket=(since, bucket_ms)) == want
                assert len({k[-1] for k in got}) > 1
        where = {"user_id": "alice"}
        scoped = aggregate.collect(conn, ORG, since, until, (), where)
        want = {
            **reference(rows, since, until, where=where)[()],
            "p50_latency_ms": None,
            "p95_latency_ms": None,
        }
        no_hist = {"p50_ttft_ms": None, "p95_ttft_ms": None}
        no_hist |= {"p50_output_tokens_per_s": None, "p10_output_tokens_per_s": None}
        assert scoped[()].stats.to_api() == {**want, **no_hist}
        llm = [r for r in rows if r["kind"] == "llm" and since <= r["created_at"] < until]
        expected = Stats()
        for r in llm:
            add_plain(expected, SimpleNamespace(**r))
        assert got_total(conn, since, until) == expected.to_api()
        users = {r["user_id"] for r in llm if r["user_id"]}
        assert aggregate.distinct_users(conn, ORG, since, until) == len(users)
    # The SQL rebuild gives the same rollup rows as the incremental path.
    with engine.connect() as conn:
        before = conn.execute(
            select(rollups.rollup_hourly).order_by(*rollups.rollup_hourly.primary_key)
        ).all()
    with engine.begin() as conn:
        rollups.rebuild(conn)
    with engine.connect() as conn:
        after = conn.execute(
            select(rollups.rollup_hourly).order_by(*rollups.rollup_hourly.primary_key)
        ).all()
        assert [rounded(r) for r in after] == [rounded(r) for r in before]
        assert (
            conn.execute(select(func.count()).select_from(rollups.rollup_user_hourly)).scalar_one()
            > 0
        )
    engine.dispose()


def rounded(row: Any) -> tuple[Any, ...]:
    """Float sums may differ in the last bit with the summation order."""
    return tuple(round(v, 6) if isinstance(v, float) else v for v in row)


def got_total(conn: Any, since: int, until: int) -> dict[str, Any]:
    return aggregate.collect(conn, ORG, since, until)[()].stats.to_api()


def test_analytics_functions_use_the_same_numbers(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    rng = random.Random(11)
    rows = [make_row(rng, T0 + rng.randint(0, 48 * HOUR - 1)) for _ in range(500)]
    with engine.begin() as conn:
        insert_records(conn, rows, [], [])
    since, until = T0, T0 + 48 * HOUR
    total = analytics.summary(engine, ORG, since, until)
    llm = [r for r in rows if r["kind"] == "llm"]
    assert total["requests"] == len(llm)
    assert total["cost_usd"] == sum(r["cost_nusd"] or 0 for r in llm if r["cost_known"]) / 1e9
    series = analytics.timeseries(engine, ORG, since, until, 6 * HOUR)
    assert len(series) == 8 and sum(p["requests"] for p in series) == len(llm)
    models = analytics.breakdown(engine, ORG, "model", since, until)
    assert sum(m["requests"] for m in models) == len(llm)
    assert {m["key"] for m in models} == {r["model"] for r in llm}
    by_model = analytics.requests_by(engine, ORG, "model", ["gpt-4o"], since, until, 6 * HOUR)
    assert sum(by_model["gpt-4o"]) == sum(1 for r in llm if r["model"] == "gpt-4o")
    engine.dispose()


def test_percentiles_are_never_made_from_part_of_a_window(db_url: str) -> None:
    """Per-user figures read lean rollups (sums, no distributions) for whole hours and raw
    rows for the edges: their percentiles would describe the edges only, so there are none,
    and the average (exact) is there instead. A whole-raw window keeps its percentiles."""
    engine = make_engine(db_url)
    migrate(engine)
    rng = random.Random(5)
    rows = [make_row(rng, T0 + rng.randint(0, 48 * HOUR - 1)) for _ in range(400)]
    with engine.begin() as conn:
        insert_records(conn, rows, [], [])
    llm = [r for r in rows if r["kind"] == "llm" and r["latency_ms"] is not None]
    user = max(
        {r["user_id"] for r in llm if r["user_id"]},
        key=lambda u: sum(r["user_id"] == u for r in llm),
    )
    mine = [r for r in llm if r["user_id"] == user]
    ragged = analytics.scoped_summary(
        engine, ORG, T0 + HOUR // 2, T0 + 48 * HOUR - HOUR // 3, dimension="user_id", value=user
    )
    assert ragged["p95_latency_ms"] is None and ragged["p50_latency_ms"] is None
    assert ragged["avg_latency_ms"] is not None
    inside = [r for r in mine if T0 + HOUR // 2 <= r["created_at"] < T0 + 48 * HOUR - HOUR // 3]
    expected = sum(r["latency_ms"] for r in inside) / len(inside)
    assert abs(ragged["avg_latency_ms"] - expected) < 0.2
    whole = analytics.summary(engine, ORG, T0, T0 + 48 * HOUR)  # the model rollup: histograms
    assert whole["p95_latency_ms"] is not None
    partial = Stats(latency_n=3, latency_sum=300.0)
    partial.latency_hist[bucket_of(100.0)] = 1  # one of three measured requests in the histogram
    assert partial.to_api()["p50_latency_ms"] is None
    engine.dispose()
