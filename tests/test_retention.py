"""Retention on both stores: what each policy deletes, what it must leave, and in batches."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from heliograph.config import Settings
from heliograph.retention import jobs as retention_jobs
from heliograph.retention.policy import PolicyError, check_override, defaults, effective
from heliograph.retention.run import Pass, reclaim
from heliograph.store import orgs
from heliograph.store import retention as store
from heliograph.store.engine import make_engine, migrate
from heliograph.store.rollups import DAILY_TABLES
from heliograph.store.schema import (
    metadata,
    request_bodies,
    request_feedback,
    request_groups,
    request_properties,
    request_scores,
    requests,
)
from heliograph.store.schema_ops import spans, webhook_deliveries, webhook_outbox
from query_support import insert as insert_records
from query_support import row

DAY = 86_400_000
NOW = int(time.time() * 1000)


def rid(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def old_row(org: str, n: int, days: float, **kw: Any) -> dict[str, Any]:
    return row(org, n, created_at=NOW - int(days * DAY), **kw)


def fill(engine: Engine, org: str, ages: dict[int, float]) -> None:
    """Records ``n -> age in days`` with bodies, a property and a group each."""
    rows = [
        old_row(org, n, age, properties={"team": "a"}, user_groups=["g"], user_id=f"u{n % 3}")
        for n, age in ages.items()
    ]
    insert_records(engine, rows, bodies=True)


def hang_off(engine: Engine, org: str, n: int) -> None:
    """Feedback, a score, a webhook outbox entry and delivery, and a span on record ``n``."""
    r, at = rid(n), NOW - 100 * DAY
    with engine.begin() as conn:
        conn.execute(
            insert(request_feedback).values(request_id=r, org_id=org, rating=True, created_at=at)
        )
        conn.execute(
            insert(request_scores).values(
                request_id=r, name="q", org_id=org, value=1.0, created_at=at
            )
        )
        conn.execute(insert(webhook_outbox).values(request_id=r, org_id=org, created_at=at))
        conn.execute(
            insert(webhook_deliveries).values(
                id=str(uuid.uuid4()),
                endpoint_id="e",
                org_id=org,
                request_id=r,
                event="record.created",
                status="delivered",
                next_attempt_at=at,
                created_at=at,
                updated_at=at,
            )
        )
        conn.execute(insert(spans).values(**span(org, n, r, created_at=NOW)))


def span(org: str, n: int, request_id: str | None, created_at: int) -> dict[str, Any]:
    return {
        "org_id": org, "trace_id": f"{n:032x}", "span_id": f"{n:016x}", "name": "llm",
        "kind": "client", "start_ns": 1, "end_ns": 2, "status": "ok",
        "request_id": request_id, "created_at": created_at,
    }  # fmt: skip


def count(engine: Engine, table: Any, **where: Any) -> int:
    stmt = select(func.count()).select_from(table)
    for name, value in where.items():
        stmt = stmt.where(table.c[name] == value)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def ids(engine: Engine, org: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(requests.c.id).where(requests.c.org_id == org)).scalars())


def body_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(request_bodies.c.request_id)).scalars())


@pytest.fixture
def two_orgs(engine: Engine) -> tuple[str, str]:
    return orgs.create_org(engine, "alpha"), orgs.create_org(engine, "beta")


def run(engine: Engine, batch: int = 2000, **settings: Any) -> list[Any]:
    return Pass(engine, Settings(retention_batch_size=batch, **settings), pause_s=0).run()


def test_bodies_only_keeps_the_records(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    fill(engine, a, {0: 40, 1: 31, 2: 29, 3: 1})
    results = run(engine, batch=1, retention_bodies_days=30)
    assert ids(engine, a) == {rid(0), rid(1), rid(2), rid(3)}  # every record stays
    assert body_ids(engine) == {rid(2), rid(3)}
    assert count(engine, request_properties) == 4  # and so does what hangs off them
    assert [r.bodies for r in results if r.org_id == a] == [2]
    assert run(engine, retention_bodies_days=30)[0].bodies == 0  # a second pass: nothing left


def test_records_go_with_everything_keyed_by_their_id(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, _ = two_orgs
    fill(engine, a, {0: 100, 1: 95, 2: 10})
    for n in (0, 2):
        hang_off(engine, a, n)
    with engine.begin() as conn:  # an ingested span of no record: goes by its own age
        conn.execute(insert(spans).values(**span(a, 7, None, created_at=NOW - 91 * DAY)))
        conn.execute(insert(spans).values(**span(a, 8, None, created_at=NOW - 1 * DAY)))
    results = run(engine, batch=1, retention_records_days=90)
    assert ids(engine, a) == {rid(2)}
    assert body_ids(engine) == {rid(2)}
    young = rid(2)
    for table in (request_properties, request_groups, request_feedback, request_scores,
                  webhook_outbox, webhook_deliveries):  # fmt: skip
        with engine.connect() as conn:
            left = set(conn.execute(select(table.c.request_id)).scalars())
        assert left == {young}, table.name
    with engine.connect() as conn:
        left_spans = set(conn.execute(select(spans.c.span_id)).scalars())
    assert left_spans == {f"{2:016x}", f"{8:016x}"}
    deleted = results[0].deleted.rows
    assert deleted["requests"] == 2 and deleted["request_bodies"] == 2 and deleted["spans"] == 2


def test_one_organizations_policy_never_touches_another(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, b = two_orgs
    fill(engine, a, {0: 50, 1: 2})
    fill(engine, b, {10: 50, 11: 2})
    store.set_override(engine, a, {"bodies_days": 5, "records_days": 10, "rollups_days": 0}, "t")
    results = {r.org_id: r for r in run(engine)}  # server default: keep everything
    assert ids(engine, a) == {rid(1)}
    assert ids(engine, b) == {rid(10), rid(11)}
    assert body_ids(engine) == {rid(1), rid(10), rid(11)}
    assert results[b].deleted.rows == {}
    assert results[a].policy.sources == ("organization", "organization", "organization")


def test_organization_override_of_never_beats_a_deleting_default(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, b = two_orgs
    fill(engine, a, {0: 50})
    fill(engine, b, {10: 50})
    store.set_override(engine, a, {"bodies_days": 0, "records_days": 0, "rollups_days": None}, None)
    run(engine, retention_records_days=30)
    assert ids(engine, a) == {rid(0)} and ids(engine, b) == set()


def test_rollups_deleted_after_their_own_limit(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    fill(engine, a, {0: 400, 1: 3})
    fill(engine, b, {10: 400})
    hourly = metadata.tables["rollup_hourly"]
    daily = DAILY_TABLES["rollup_user_daily"]
    assert count(engine, hourly, org_id=a) == 2 and count(engine, daily, org_id=a) == 2
    store.set_override(engine, a, {"rollups_days": 365, "records_days": None}, None)
    results = {r.org_id: r for r in run(engine)}
    assert count(engine, hourly, org_id=a) == 1 and count(engine, daily, org_id=a) == 1
    assert count(engine, hourly, org_id=b) == 1  # b keeps its rollups
    assert ids(engine, a) == {rid(0), rid(1)}  # records have their own limit (never here)
    assert results[a].deleted.rows["rollup_hourly"] == 1


def test_tiny_batches_take_every_old_row(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    fill(engine, a, {n: 20 + n / 100 for n in range(23)} | {99: 1})
    results = run(engine, batch=3, retention_records_days=10)
    assert ids(engine, a) == {rid(99)}
    assert results[0].records == 23 and count(engine, request_bodies) == 1


def test_dry_run_counts_without_deleting(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    fill(engine, a, {0: 50, 1: 20, 2: 1})
    settings = Settings(retention_bodies_days=10, retention_records_days=30)
    results = Pass(engine, settings).run(only_org="alpha", dry_run=True)
    assert [(r.name, r.records, r.bodies) for r in results] == [("alpha", 1, 2)]
    assert len(ids(engine, a)) == 3 and len(body_ids(engine)) == 3


def test_lease_keeps_a_second_job_process_out(engine: Engine) -> None:
    assert store.take_lease(engine, "retention", "p1", 60_000)
    assert not store.take_lease(engine, "retention", "p2", 60_000)
    assert store.take_lease(engine, "retention", "p1", 60_000)  # renewal
    store.end_lease(engine, "retention", "p1")
    assert store.last_run(engine, "retention") is not None
    assert store.take_lease(engine, "retention", "p2", 60_000)


def test_job_tick_runs_when_due_and_skips_when_another_holds_the_lease(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, _ = two_orgs
    fill(engine, a, {0: 50, 1: 1})

    class Context:
        settings = Settings(retention_records_days=30, retention_interval_s=3600)
        owner = "me"

    context = Context()
    context.engine = engine  # type: ignore[attr-defined]
    assert store.take_lease(engine, "retention", "someone-else", 60_000)
    assert retention_jobs.run_once(context) == -1 and len(ids(engine, a)) == 2
    store.end_lease(engine, "retention", "someone-else")
    assert not retention_jobs.is_due(context)  # the other one just ran
    assert retention_jobs.run_once(context) == 1 and ids(engine, a) == {rid(1)}


def test_policy_checks() -> None:
    settings = Settings(retention_records_days=30)
    assert defaults(Settings()).as_dict()["records_days"] is None
    assert check_override(settings, {"bodies_days": 7}) == {
        "bodies_days": 7, "records_days": None, "rollups_days": None,
    }  # fmt: skip
    with pytest.raises(PolicyError, match=r"records_days \(30 \(the server default\)\)"):
        check_override(settings, {"bodies_days": 31})
    with pytest.raises(PolicyError, match="at least bodies_days"):
        check_override(Settings(), {"bodies_days": 10, "records_days": 5})
    for bad in (-1, 36501, 1.5, "7", True):
        with pytest.raises(PolicyError):
            check_override(Settings(), {"bodies_days": bad})
    with pytest.raises(PolicyError, match="unknown field 'body_days'"):
        check_override(Settings(), {"body_days": 1})
    assert check_override(settings, {"records_days": 0, "bodies_days": 400})["bodies_days"] == 400
    policy = effective(settings, {"bodies_days": None, "records_days": 0, "rollups_days": 9})
    assert (policy.bodies_days, policy.records_days, policy.rollups_days) == (None, None, 9)
    with pytest.raises(ValueError, match="retention_records_days"):
        Settings(retention_bodies_days=10, retention_records_days=5)


def test_sqlite_file_shrinks_after_retention(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    space = store.sqlite_space(engine)
    assert space is not None and space.auto_vacuum == 2  # a new file is incremental
    org = orgs.create_org(engine, "o")
    big = "x" * 4000
    for start in range(0, 3000, 500):
        rows = [old_row(org, n, 60, error=big) for n in range(start, start + 500)]
        insert_records(engine, rows, bodies=True)
    store.checkpoint(engine)
    before = path.stat().st_size
    run(engine, retention_records_days=30)
    vacuum = reclaim(engine)
    after = path.stat().st_size
    engine.dispose()
    assert before > 10_000_000
    assert after < before / 3, (before, after)
    assert vacuum.freed_bytes > before / 2


def test_old_sqlite_file_is_switched_by_a_full_vacuum(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # created before retention existed: auto_vacuum NONE
        conn.execute("CREATE TABLE filler (x TEXT)")
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    space = store.sqlite_space(engine)
    assert space is not None and space.auto_vacuum == 0
    assert "not returned to the OS" in reclaim(engine).note
    assert "VACUUM" in reclaim(engine, full=True).note
    space = store.sqlite_space(engine)
    engine.dispose()
    assert space is not None and space.auto_vacuum == 2
