"""Monthly partitions on PostgreSQL: the upgrade keeps every row in its month, the job
process makes months ahead and empties the default partition, ids stay unique across months,
and retention drops whole months with what hangs off their records."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from conftest import create_pg_database
from heliograph.config import Settings
from heliograph.retention.run import Pass
from heliograph.store import orgs, partitions
from heliograph.store import retention as store
from heliograph.store.engine import current_revision, make_engine, migrate
from heliograph.store.inserts import insert_batch, pack_records
from heliograph.store.partitions import Month
from heliograph.store.requests import get_request
from heliograph.store.schema import (
    request_bodies,
    request_groups,
    request_ids,
    request_properties,
    requests,
)
from query_support import body, row
from query_support import insert as insert_records

DAY = 86_400_000
NOW = int(time.time() * 1000)


def ms(year: int, month: int, day: int = 15) -> int:
    return int(dt.datetime(year, month, day, 12, tzinfo=dt.UTC).timestamp() * 1000)


def rid(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


@pytest.fixture
def pg_url(pg_admin: str) -> Iterator[str]:
    url, drop = create_pg_database(pg_admin)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def homes(engine: Engine, table: str, key: str) -> dict[str, str]:
    """Each row's key -> the partition that holds it, as PostgreSQL reports it."""
    with engine.connect() as conn:
        sql = f'SELECT {key}, tableoid::regclass::text FROM "{table}"'
        return {str(k): str(p) for k, p in conn.execute(text(sql)).all()}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def ids_of(engine: Engine, table: Any, column: str = "request_id") -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(table.c[column])).scalars())


def fill(engine: Engine, org: str, times: dict[int, int]) -> None:
    rows = [
        row(org, n, created_at=at, properties={"team": "a"}, user_groups=["g"])
        for n, at in times.items()
    ]
    insert_records(engine, rows, bodies=True)


def run(engine: Engine, **settings: Any) -> tuple[Pass, list[Any]]:
    job = Pass(engine, Settings(retention_batch_size=2, **settings), pause_s=0)
    return job, job.run()


def test_upgrade_puts_every_row_in_its_month(pg_url: str) -> None:
    engine = make_engine(pg_url)
    migrate(engine, "0022")
    times = {
        "a": ms(2025, 1, 31),
        "b": ms(
            2025,
            6,
            1,
        ),
        "c": NOW,
        "d": ms(2025, 6, 30),
    }
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organizations (id, name, created_at) VALUES ('o1', 'old', 1)")
        )
        for key, at in times.items():
            conn.execute(
                text(
                    "INSERT INTO requests (id, org_id, created_at, kind, provider, upstream,"
                    " method, endpoint, model, stream, status, state) VALUES (:id, 'o1', :at,"
                    " 'llm', 'openai', 'openai', 'POST', '/chat/completions', 'gpt-4o', false,"
                    " 200, 'ok')"
                ),
                {"id": key, "at": at},
            )
        for key in ("a", "b", "c", "orphan"):  # a body whose record is gone survives too
            conn.execute(
                text(
                    "INSERT INTO request_bodies (request_id, encoding, request_body, truncated)"
                    " VALUES (:id, 'none', :b, false)"
                ),
                {"id": key, "b": f"body {key}".encode()},
            )
        conn.execute(
            text(
                "INSERT INTO request_properties (request_id, name, value, org_id)"
                " VALUES ('a', 'team', 'x', 'o1')"
            )
        )
    migrate(engine)
    assert current_revision(engine) == "0023"
    assert partitions.is_partitioned(engine)
    now = Month.of(NOW)
    assert homes(engine, "requests", "id") == {
        "a": "requests_p202501",
        "b": "requests_p202506",
        "d": "requests_p202506",
        "c": now.name("requests"),
    }
    assert homes(engine, "request_bodies", "request_id") == {
        "a": "request_bodies_p202501",
        "b": "request_bodies_p202506",
        "c": now.name("request_bodies"),
        "orphan": "request_bodies_default",
    }
    made = {p.name for p in partitions.list_partitions(engine, "requests")}
    assert {"requests_p202501", "requests_p202506", now.next().name("requests")} <= made
    with engine.connect() as conn:  # the bodies kept their bytes, the records their time
        raw = conn.execute(text("SELECT request_body FROM request_bodies WHERE request_id = 'b'"))
        assert bytes(raw.scalar_one()) == b"body b"
        guard = dict(conn.execute(text("SELECT request_id, created_at FROM request_ids")).all())
    assert guard == times
    assert count(engine, request_properties) == 1
    record = get_request(engine, "o1", "d")
    assert record is not None and record["created_at"].startswith("2025-06-30T12:00")
    migrate(engine)  # a second upgrade is a no-op
    assert count(engine, requests) == 4
    engine.dispose()


def test_maintenance_makes_months_ahead_and_empties_the_default(pg: Engine) -> None:
    org = orgs.create_org(pg, "alpha")
    far = ms(2031, 3)  # no partition holds it yet: it waits in the default partition
    old = ms(2024, 2)
    fill(pg, org, {0: far, 1: old, 2: NOW})
    assert homes(pg, "requests", "id")[rid(0)] == "requests_default"
    assert homes(pg, "request_bodies", "request_id")[rid(1)] == "request_bodies_default"
    done = partitions.maintain(pg, NOW, ahead=2)
    month = Month.of(NOW)
    ahead = month.next().next()
    assert ahead.name("requests") in done.created and ahead.name("request_bodies") in done.created
    assert done.moved == 4  # two records and their two bodies
    assert homes(pg, "requests", "id") == {
        rid(0): "requests_p203103",
        rid(1): "requests_p202402",
        rid(2): month.name("requests"),
    }
    assert homes(pg, "request_bodies", "request_id")[rid(0)] == "request_bodies_p203103"
    assert partitions.default_months(pg, "requests") == {}
    again = partitions.maintain(pg, NOW, ahead=2)
    assert again.created == [] and again.moved == 0
    since = partitions.maintain(pg, NOW, since_ms=ms(2023, 11))  # a backfill's months
    assert "requests_p202312" in since.created and "request_bodies_p202311" in since.created
    record = get_request(pg, org, rid(0))
    assert record is not None and record["created_at"].startswith("2031-03-15T12:00")


def test_job_processes_making_months_at_once_make_each_once(pg: Engine) -> None:
    since = ms(2022, 1)
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: partitions.maintain(pg, NOW, since_ms=since), range(4)))
    names = [name for done in made for name in done.created]
    assert len(names) == len(set(names))  # no month made twice, no error
    listed = partitions.list_partitions(pg, "requests")
    migrated = {Month.of(NOW).name("requests"), Month.of(NOW).next().name("requests")}
    assert {p.name for p in listed} <= set(names) | migrated
    assert listed[0].month == Month(2022, 1) and listed[-1].month == Month.of(NOW).next().next()
    months = [p.month for p in listed]
    assert months == sorted(set(months))


def test_an_id_is_stored_once_across_months(pg: Engine) -> None:
    org = orgs.create_org(pg, "alpha")
    partitions.maintain(pg, NOW, since_ms=NOW - 70 * DAY)
    fill(pg, org, {0: NOW - 65 * DAY})
    again = row(org, 0, created_at=NOW, model="replayed")  # the same id, another month
    fresh = row(org, 1, created_at=NOW)
    with pg.begin() as conn:
        stored = insert_batch(
            conn, pack_records([again, fresh], [body(rid(0), "x"), body(rid(1), "y")], [])
        )
    assert stored == {rid(1)}
    with pg.connect() as conn:
        models = conn.execute(select(requests.c.model).where(requests.c.id == rid(0))).all()
    assert models == [("gpt-4o",)]
    assert count(pg, requests) == 2 and count(pg, request_bodies) == 2
    assert ids_of(pg, request_ids) == {rid(0), rid(1)}


def test_retention_drops_whole_months_and_what_hangs_off_them(pg: Engine) -> None:
    org = orgs.create_org(pg, "alpha")
    old, edge, young = NOW - 200 * DAY, NOW - 70 * DAY, NOW - DAY
    partitions.maintain(pg, NOW, since_ms=old)
    fill(pg, org, {0: old, 1: old + 1, 2: edge, 3: young})
    job, results = run(pg, retention_records_days=60)
    gone = Month.of(old).name("requests")
    assert gone in job.dropped and Month.of(old).name("request_bodies") in job.dropped
    assert Month.of(young).name("requests") not in job.dropped
    assert gone not in {p.name for p in partitions.list_partitions(pg, "requests")}
    assert partitions.detached(pg, "requests") == []  # dropped, not left detached
    assert ids_of(pg, requests, "id") == {rid(3)}  # the edge month's record went in a batch
    for table in (request_bodies, request_properties, request_groups, request_ids):
        assert ids_of(pg, table) == {rid(3)}, table.name
    assert results[0].deleted.rows["requests"] == 3
    assert job.months.rows["request_properties"] >= 2


def test_bodies_months_go_while_their_records_stay(pg: Engine) -> None:
    org = orgs.create_org(pg, "alpha")
    old = NOW - 200 * DAY
    partitions.maintain(pg, NOW, since_ms=old)
    fill(pg, org, {0: old, 1: NOW})
    job, _ = run(pg, retention_bodies_days=60)
    assert Month.of(old).name("request_bodies") in job.dropped  # and the empty months after
    assert all(name.startswith("request_bodies_p") for name in job.dropped)
    assert ids_of(pg, requests, "id") == {rid(0), rid(1)}
    assert ids_of(pg, request_bodies) == {rid(1)}
    assert ids_of(pg, request_properties) == {rid(0), rid(1)}


def test_an_organization_that_keeps_everything_blocks_whole_months(pg: Engine) -> None:
    a, b = orgs.create_org(pg, "alpha"), orgs.create_org(pg, "beta")
    old = NOW - 200 * DAY
    partitions.maintain(pg, NOW, since_ms=old)
    fill(pg, a, {0: old})
    fill(pg, b, {10: old})
    store.set_override(pg, b, {"bodies_days": 0, "records_days": 0}, None)  # keep for ever
    job, _ = run(pg, retention_records_days=60)
    assert job.dropped == []
    assert ids_of(pg, requests, "id") == {rid(10)}  # a's record still went, in a batch
    assert ids_of(pg, request_bodies) == {rid(10)}
    assert Month.of(old) in {p.month for p in partitions.list_partitions(pg, "requests")}


def test_a_stopped_pass_leaves_a_detached_month_the_next_one_finishes(pg: Engine) -> None:
    org = orgs.create_org(pg, "alpha")
    old = NOW - 200 * DAY
    partitions.maintain(pg, NOW, since_ms=old)
    fill(pg, org, {n: old + n for n in range(5)} | {9: NOW})
    asked = iter([True, True, False])  # detach the first month, then told to stop
    stopping = Pass(
        pg,
        Settings(retention_batch_size=2, retention_records_days=60),
        keep_going=lambda: next(asked, False),
        pause_s=0,
    )
    stopping.run()
    month = Month.of(old).name("requests")
    assert [p.name for p in partitions.detached(pg, "requests")] == [month]
    assert stopping.dropped == []
    assert ids_of(pg, requests, "id") == {rid(9)}  # a detached month is read by no query
    assert len(ids_of(pg, request_properties)) > 1  # its dependents are not all gone yet
    job, _ = run(pg, retention_records_days=60)
    assert month in job.dropped
    assert partitions.detached(pg, "requests") == []
    for table in (request_properties, request_groups, request_ids, request_bodies):
        assert ids_of(pg, table) == {rid(9)}, table.name


def test_sqlite_has_no_partitions(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    assert not partitions.is_partitioned(engine)
    assert partitions.maintain(engine, NOW).created == []
    assert (
        partitions.list_partitions(engine) == [] and partitions.detached(engine, "requests") == []
    )
    org = orgs.create_org(engine, "alpha")
    fill(engine, org, {0: NOW})
    with engine.connect() as conn:
        at = conn.execute(select(request_bodies.c.created_at)).scalar_one()
    assert at == NOW  # the body carries its record's time on both stores
    engine.dispose()
