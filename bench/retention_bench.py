"""Retention at scale: a month of records deleted while a writer keeps inserting.

    python bench/retention_bench.py [--records 1000000] [--days 60] [--keep 30]
                                    [--dialect postgresql|sqlite] [--batch 2000]

Fills a new store with ``--records`` synthetic requests (bodies, a property and Open WebUI
groups each) spread evenly over ``--days`` days, through the store's own batch insert (COPY on
PostgreSQL; rollups maintained as the writer does), then runs one retention pass with
``records_days = --keep`` (so about ``(days - keep) / days`` of the records go) while a second
process inserts batches of 10 new records in a loop, like the writer. Reports the pass's time
and rows deleted, and the writer's insert latency (p50, p99, max) before and during the pass.
Target (issue 19): a month of data retained away in under a minute without blocking writes.

On PostgreSQL the store's monthly partitions are made first (as the job process does), so the
pass drops the months the policy has passed whole and deletes only the rest in batches;
``--no-partitions`` leaves every row in the default partition, which measures batched deletes
alone (the figure before partitions).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_bench import directory_rows, synthetic
from heliograph.config import Settings
from heliograph.retention.run import Pass
from heliograph.store import orgs, partitions
from heliograph.store.engine import make_engine, migrate
from heliograph.store.inserts import insert_batch, pack_records

DAY = 86_400_000
FILL_BATCH = 5000
WRITE_BATCH = 10


def batch(rng: random.Random, org_id: str, n: int, newest: int, span_ms: int) -> object:
    """``n`` records created in ``(newest - span_ms, newest]`` (a batch covers a short time,
    as the writer's do, so each adds to a few rollup hours)."""
    pairs = [synthetic(rng, org_id, newest) for _ in range(n)]
    rows = [p[0] for p in pairs]
    for row in rows:
        row["created_at"] = newest - int(rng.random() * span_ms)
        row["properties"] = {"team": f"t{rng.randint(0, 9)}"}
    props = [
        {"request_id": r["id"], "name": "team", "value": r["properties"]["team"], "org_id": org_id}
        for r in rows
    ]
    groups = [
        {"request_id": r["id"], "name": g, "org_id": org_id} for r in rows for g in r["user_groups"]
    ]
    return pack_records(rows, [p[1] for p in pairs], props, groups, directory_rows(org_id, rows))


def fill(engine: object, org_id: str, records: int, days: float) -> float:
    rng = random.Random(19)
    now = int(time.time() * 1000)
    started = time.perf_counter()
    step = int(days * DAY * FILL_BATCH / records)  # oldest first, evenly over the days
    for start in range(0, records, FILL_BATCH):
        newest = now - int(days * DAY) + (start // FILL_BATCH + 1) * step
        packed = batch(rng, org_id, min(FILL_BATCH, records - start), newest, step)
        with engine.begin() as conn:  # type: ignore[attr-defined]
            insert_batch(conn, packed)  # type: ignore[arg-type]
        done = start + FILL_BATCH
        if done % 100_000 == 0:
            rate = done / (time.perf_counter() - started)
            print(f"  {done:,} records ({rate:,.0f}/s)", flush=True)
    if engine.dialect.name == "postgresql":  # type: ignore[attr-defined]
        with engine.connect() as conn:  # type: ignore[attr-defined]
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


def write_loop(url: str, org_id: str, stop: Any, out: Any) -> None:
    """The writer, in its own process (as in ``heliograph serve``): ``WRITE_BATCH`` fresh
    records per transaction until ``stop``; sends back (start time, latency ms) pairs."""
    engine = make_engine(url)
    rng = random.Random(7)
    timings = []
    while not stop.is_set():
        packed = batch(rng, org_id, WRITE_BATCH, int(time.time() * 1000), 1)
        started = time.time()
        t0 = time.perf_counter()
        with engine.begin() as conn:
            insert_batch(conn, packed)  # type: ignore[arg-type]
        timings.append((started, (time.perf_counter() - t0) * 1000))
        time.sleep(0.005)
    engine.dispose()
    out.put(timings)


def describe(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no inserts"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name}: {len(values):,} inserts of {WRITE_BATCH}, p50 {statistics.median(values):.1f} ms"
        f", p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=60)
    parser.add_argument("--keep", type=int, default=30)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--dialect", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-partitions", action="store_true", help="PostgreSQL: batches only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        drop = None
        if args.dialect == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        else:
            from conftest import create_pg_database

            url, drop = create_pg_database(args.pg)
        try:
            run(url, args)
        finally:
            if drop is not None:
                drop()


def run(url: str, args: argparse.Namespace) -> None:
    engine = make_engine(url)
    migrate(engine)
    org_id = orgs.create_org(engine, "bench")
    if not args.no_partitions:
        now = int(time.time() * 1000)
        made = partitions.maintain(engine, now, since_ms=now - int(args.days * DAY))
        if made.created:
            print(f"partitions: {', '.join(made.created)}")
    print(f"{engine.dialect.name}: filling {args.records:,} records over {args.days:g} days")
    elapsed = fill(engine, org_id, args.records, args.days)
    print(f"filled in {elapsed:.0f} s ({args.records / elapsed:,.0f}/s)")
    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    writer = context.Process(target=write_loop, args=(url, org_id, stop, out))
    writer.start()
    time.sleep(8)  # the writer's own start-up, then a baseline
    settings = Settings(retention_records_days=args.keep, retention_batch_size=args.batch)
    began = time.time()
    t0 = time.perf_counter()
    the_pass = Pass(engine, settings)
    [result] = the_pass.run()
    took = time.perf_counter() - t0
    ended = time.time()
    time.sleep(3)
    stop.set()
    timings = out.get(timeout=60)
    writer.join(30)
    engine.dispose()
    phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for at, ms in timings:
        phase = "before" if at < began else "during" if at + ms / 1000 <= ended else "after"
        phases[phase].append(ms)
    deleted = result.deleted.rows
    records = deleted.get("requests", 0)
    verdict = "PASS" if took < 60 else "FAIL"
    print(f"retention of records older than {args.keep} days (batch {args.batch}):")
    print(f"  deleted {records:,} records in {took:.1f} s ({records / took:,.0f}/s)  {verdict}")
    print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in sorted(deleted.items())))
    if the_pass.dropped:
        whole = ", ".join(f"{t} {n:,}" for t, n in sorted(the_pass.months.rows.items()))
        print(f"  of which whole months {', '.join(the_pass.dropped)}: {whole}")
    for phase in ("before", "during", "after"):
        print("  writer " + describe(phase, phases[phase]))


if __name__ == "__main__":
    main()
