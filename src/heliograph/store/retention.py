"""Retention's SQL: policy overrides, what is due, and deletion in short batches.

Every delete here is one short transaction over at most ``limit`` request ids chosen oldest
first through ``ix_requests_org_created`` (so no statement holds locks for long and the writer
keeps writing between two batches), and every delete is idempotent: two job processes that
pick the same batch delete it once between them. Only records of the organization named are
ever selected; what hangs off a record is deleted by its id, in the same transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    String,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from heliograph.store import partitions
from heliograph.store.partitions import Partition
from heliograph.store.rollups import DAILY_TABLES, PAIRS
from heliograph.store.schema import (
    eval_queue,
    metadata,
    request_bodies,
    request_feedback,
    request_groups,
    request_ids,
    request_properties,
    request_scores,
    requests,
)
from heliograph.store.schema_ops import spans, webhook_deliveries, webhook_outbox
from heliograph.store.schema_retention import retention_leases, retention_policies

# Tables whose rows belong to one record, deleted with it (the spans go by request id too).
DEPENDENTS: tuple[Table, ...] = (
    request_bodies,
    request_ids,
    request_properties,
    request_groups,
    request_feedback,
    request_scores,
    webhook_outbox,
    webhook_deliveries,
)
ROLLUP_NAMES = (
    "rollup_hourly",
    "rollup_user_hourly",
    "rollup_task_hourly",
    *PAIRS,
    *DAILY_TABLES,
)
ROLLUP_CHUNK_MS = 7 * 86_400_000  # a week of an organization's rollup rows per transaction


def now_ms() -> int:
    return int(time.time() * 1000)


# -- policies -----------------------------------------------------------------------------


def get_override(engine: Engine, org_id: str) -> dict[str, Any] | None:
    """The organization's row of ``retention_policies``, or None (server defaults apply)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(retention_policies).where(retention_policies.c.org_id == org_id)
        ).first()
    return dict(row._mapping) if row else None


def list_overrides(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(retention_policies)).all()
    return {str(r.org_id): dict(r._mapping) for r in rows}


def set_override(
    engine: Engine, org_id: str, days: dict[str, int | None], by: str | None
) -> dict[str, Any]:
    """Replace the organization's override (``bodies_days``, ``records_days``,
    ``rollups_days``; None = the server default). Upsert by read-then-write in one
    transaction: a concurrent first write loses with an IntegrityError and is retried."""
    values = {**days, "updated_at": now_ms(), "updated_by": by}
    for _ in range(3):
        try:
            with engine.begin() as conn:
                done = conn.execute(
                    update(retention_policies)
                    .where(retention_policies.c.org_id == org_id)
                    .values(**values)
                ).rowcount
                if not done:
                    conn.execute(retention_policies.insert().values(org_id=org_id, **values))
            break
        except IntegrityError:
            continue
    row = get_override(engine, org_id)
    assert row is not None
    return row


# -- what is due ----------------------------------------------------------------------------


def count_records(engine: Engine, org_id: str, before_ms: int) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).where(
            requests.c.org_id == org_id, requests.c.created_at < before_ms
        )
        return int(conn.execute(stmt).scalar_one())


def count_bodies(engine: Engine, org_id: str, before_ms: int) -> int:
    with engine.connect() as conn:
        stmt = (
            select(func.count())
            .select_from(
                requests.join(request_bodies, request_bodies.c.request_id == requests.c.id)
            )
            .where(requests.c.org_id == org_id, requests.c.created_at < before_ms)
        )
        return int(conn.execute(stmt).scalar_one())


# -- deleting in batches ----------------------------------------------------------------------


@dataclass
class Cursor:
    """Where a walk over an organization's old records stands: the last (created_at, id)."""

    created_at: int = -1
    id: str = ""


def _old_ids(
    conn: Connection,
    org_id: str,
    before_ms: int,
    limit: int,
    after: Cursor | None = None,
    with_bodies: bool = False,
) -> list[tuple[int, str]]:
    """The next ``limit`` (created_at, id) of the organization's records older than
    ``before_ms``, oldest first, after ``after``; ``with_bodies``: only records that still
    have a body (the database skips the body-less ones in the same scan)."""
    source: Any = requests
    if with_bodies:
        source = requests.join(request_bodies, request_bodies.c.request_id == requests.c.id)
    stmt = (
        select(requests.c.created_at, requests.c.id)
        .select_from(source)
        .where(requests.c.org_id == org_id, requests.c.created_at < before_ms)
    )
    if after is not None:
        stmt = stmt.where(
            or_(
                requests.c.created_at > after.created_at,
                and_(requests.c.created_at == after.created_at, requests.c.id > after.id),
            )
        )
    stmt = stmt.order_by(requests.c.created_at, requests.c.id).limit(limit)
    return [(int(r[0]), str(r[1])) for r in conn.execute(stmt)]


def delete_bodies_batch(
    engine: Engine, org_id: str, before_ms: int, after: Cursor, limit: int
) -> tuple[int, Cursor | None]:
    """Delete the bodies of the next ``limit`` old records after ``after``; the records stay.

    Answers (bodies deleted, the cursor to go on from, or None when the walk is done). The
    walk goes by cursor because the records stay: starting over would read them again, and
    it joins the bodies so that records whose body is gone cost no round trip."""
    with engine.begin() as conn:
        picked = _old_ids(conn, org_id, before_ms, limit, after, with_bodies=True)
        if not picked:
            return 0, None
        ids = [rid for _, rid in picked]
        gone = conn.execute(
            delete(request_bodies).where(_among(conn, request_bodies.c.request_id, ids))
        )
    last = picked[-1]
    return gone.rowcount or 0, Cursor(last[0], last[1]) if len(picked) == limit else None


@dataclass
class Deleted:
    """Rows deleted, per table."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        if n:
            self.rows[table] = self.rows.get(table, 0) + n

    def merge(self, other: Deleted) -> None:
        for table, n in other.rows.items():
            self.add(table, n)


def _among(conn: Connection, column: Any, ids: list[str]) -> Any:
    """``column`` is one of ``ids``: one array parameter on PostgreSQL (binding thousands of
    separate parameters cost more than the delete itself), an IN list on SQLite."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("ids", ids, type_=ARRAY(String)))
    return column.in_(ids)


def delete_records_batch(engine: Engine, org_id: str, before_ms: int, limit: int) -> Deleted:
    """Delete the oldest ``limit`` records older than ``before_ms`` and everything keyed by
    their ids (bodies, properties, groups, feedback, scores, webhook outbox and deliveries,
    the spans that became them). An empty answer means nothing old is left."""
    out = Deleted()
    with engine.begin() as conn:
        ids = [rid for _, rid in _old_ids(conn, org_id, before_ms, limit)]
        if not ids:
            return out
        for table in DEPENDENTS:
            gone = conn.execute(delete(table).where(_among(conn, table.c.request_id, ids)))
            out.add(table.name, gone.rowcount or 0)
        gone = conn.execute(delete(spans).where(_among(conn, spans.c.request_id, ids)))
        out.add(spans.name, gone.rowcount or 0)
        gone = conn.execute(
            delete(requests).where(requests.c.org_id == org_id, _among(conn, requests.c.id, ids))
        )
        out.add(requests.name, gone.rowcount or 0)
    return out


def delete_month_dependents(
    engine: Engine, partition: Partition, after: str, limit: int
) -> tuple[Deleted, str | None]:
    """Delete what hangs off the next ``limit`` records (by id, after ``after``) of a month of
    ``requests`` that retention detached to drop whole: the same tables as a record batch,
    bodies aside (their month goes whole too). Answers the rows deleted and the id to go on
    from, or None when the month is done."""
    out = Deleted()
    with engine.begin() as conn:
        ids = partitions.month_ids(conn, partition, after, limit)
        if not ids:
            return out, None
        for table in (*(t for t in DEPENDENTS if t is not request_bodies), spans):
            gone = conn.execute(delete(table).where(_among(conn, table.c.request_id, ids)))
            out.add(table.name, gone.rowcount or 0)
    return out, ids[-1] if len(ids) == limit else None


def delete_spans_batch(engine: Engine, org_id: str, before_ms: int, limit: int) -> int:
    """Delete up to ``limit`` ingested spans stored before ``before_ms`` (oldest first)."""
    with engine.begin() as conn:
        keys = conn.execute(
            select(spans.c.trace_id, spans.c.span_id)
            .where(spans.c.org_id == org_id, spans.c.created_at < before_ms)
            .order_by(spans.c.created_at)
            .limit(limit)
        ).all()
        if not keys:
            return 0
        gone = conn.execute(
            delete(spans).where(
                spans.c.org_id == org_id,
                tuple_(spans.c.trace_id, spans.c.span_id).in_([tuple(k) for k in keys]),
            )
        )
    return gone.rowcount or 0


def delete_eval_queue(engine: Engine, org_id: str, before_ms: int, limit: int) -> int:
    """Finished online-evaluation queue entries older than ``before_ms`` (their records are
    going); pending ones stay so the evaluator never loses track of work in flight."""
    with engine.begin() as conn:
        ids = conn.execute(
            select(eval_queue.c.id)
            .where(
                eval_queue.c.status.in_(("done", "error")),
                eval_queue.c.created_at < before_ms,
                eval_queue.c.org_id == org_id,
            )
            .limit(limit)
        ).scalars()
        found = list(ids)
        if not found:
            return 0
        gone = conn.execute(delete(eval_queue).where(eval_queue.c.id.in_(found)))
    return gone.rowcount or 0


def delete_rollups(engine: Engine, org_id: str, before_ms: int) -> Deleted:
    """Rollup rows of hours before ``before_ms``, a week of hours per transaction."""
    out = Deleted()
    for name in ROLLUP_NAMES:
        table = metadata.tables[name]
        with engine.connect() as conn:
            first = conn.execute(
                select(func.min(table.c.hour)).where(table.c.org_id == org_id)
            ).scalar_one()
        if first is None:
            continue
        start = int(first)
        while start < before_ms:
            end = min(start + ROLLUP_CHUNK_MS, before_ms)
            with engine.begin() as conn:
                gone = conn.execute(
                    delete(table).where(table.c.org_id == org_id, table.c.hour < end)
                )
            out.add(name, gone.rowcount or 0)
            start = end
    return out


# -- the lease between job processes -----------------------------------------------------------


def take_lease(engine: Engine, name: str, owner: str, ttl_ms: int) -> bool:
    """Hold ``name`` for ``ttl_ms`` unless another owner holds it now (a guarded update)."""
    now = now_ms()
    try:
        with engine.begin() as conn:
            conn.execute(retention_leases.insert().values(name=name, owner=None, until_ms=0))
    except IntegrityError:
        pass  # the row exists already: the usual case
    with engine.begin() as conn:
        taken = conn.execute(
            update(retention_leases)
            .where(
                retention_leases.c.name == name,
                or_(retention_leases.c.until_ms < now, retention_leases.c.owner == owner),
            )
            .values(owner=owner, until_ms=now + ttl_ms)
        ).rowcount
    return bool(taken)


def end_lease(engine: Engine, name: str, owner: str) -> None:
    """Give the lease back and note when the pass ended."""
    with engine.begin() as conn:
        conn.execute(
            update(retention_leases)
            .where(retention_leases.c.name == name, retention_leases.c.owner == owner)
            .values(until_ms=0, last_run_at=now_ms())
        )


def last_run(engine: Engine, name: str) -> int | None:
    with engine.connect() as conn:
        value = conn.execute(
            select(retention_leases.c.last_run_at).where(retention_leases.c.name == name)
        ).scalar()
    return None if value is None else int(value)


# -- giving space back (SQLite) -------------------------------------------------------------------


@dataclass
class Space:
    """A SQLite file's pages: the mode decides whether freed pages can go back to the OS."""

    auto_vacuum: int  # 0 none, 1 full, 2 incremental
    page_size: int
    pages: int
    free_pages: int


def sqlite_space(engine: Engine) -> Space | None:
    """The SQLite store's page counts, or None on PostgreSQL (autovacuum's job there)."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as conn:

        def pragma(name: str) -> int:
            return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())

        return Space(
            pragma("auto_vacuum"),
            pragma("page_size"),
            pragma("page_count"),
            pragma("freelist_count"),
        )


def incremental_vacuum(engine: Engine, pages: int) -> int:
    """Return up to ``pages`` free pages to the OS (auto_vacuum=INCREMENTAL only); answers
    how many went. Short steps, so the writer waits at most one step for the lock."""
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        assert dbapi is not None
        before = int(dbapi.execute("PRAGMA freelist_count").fetchone()[0])
        # executescript steps the pragma to its end; execute() would free a single page
        dbapi.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
        after = int(dbapi.execute("PRAGMA freelist_count").fetchone()[0])
    finally:
        raw.close()
    return before - after


def checkpoint(engine: Engine) -> None:
    """Move the WAL into the database file and truncate both (the file shrinks only then)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()


def full_vacuum(engine: Engine) -> None:
    """Rewrite the whole file with auto_vacuum=INCREMENTAL: the one-time switch an existing
    database needs. Takes the write lock for as long as it runs."""
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        assert dbapi is not None
        saved = dbapi.isolation_level
        dbapi.isolation_level = None  # VACUUM cannot run inside a transaction
        try:
            dbapi.execute("PRAGMA auto_vacuum=INCREMENTAL")
            dbapi.execute("VACUUM")
        finally:
            dbapi.isolation_level = saved
    finally:
        raw.close()
