"""The job process's durable queue: enqueue, lease, renew, finish, fail.

A job is taken with one guarded UPDATE (``status`` queued, or running with a lease that ran
out, or running under an owner the caller proved dead): the row count says whether this
process won it, so two processes, or two replicas on one database, never run one job at once.
A lease is renewed while the job runs; a renewal that finds the lease gone (another process
took the job over after this one stalled past it) tells the holder to stop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update

from heliograph.store.schema import jobs

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
CANDIDATES = 20


def now_ms() -> int:
    return int(time.time() * 1000)


def enqueue(
    engine: Engine,
    kind: str,
    payload: dict[str, Any],
    *,
    org_id: str | None = None,
    ref_id: str | None = None,
) -> str:
    """A new queued job; returns its id."""
    job_id, now = str(uuid.uuid4()), now_ms()
    with engine.begin() as conn:
        conn.execute(
            insert(jobs).values(
                id=job_id,
                org_id=org_id,
                kind=kind,
                ref_id=ref_id,
                payload=payload,
                status=QUEUED,
                created_at=now,
                updated_at=now,
            )
        )
    return job_id


def lease(
    engine: Engine,
    owner: str,
    kinds: list[str],
    lease_s: float,
    owner_dead: Callable[[str], bool] = lambda _owner: False,
) -> dict[str, Any] | None:
    """Take one job of ``kinds`` for ``lease_s`` seconds, or None when there is none.

    ``owner_dead`` may say that a running job's lease holder is gone (a process of this host
    that no longer exists), so its job is taken over before the lease runs out.
    """
    if not kinds:
        return None
    now = now_ms()
    query = (
        select(jobs.c.id, jobs.c.status, jobs.c.lease_owner, jobs.c.lease_until)
        .where(jobs.c.kind.in_(kinds), jobs.c.status.in_((QUEUED, RUNNING)))
        .order_by(jobs.c.created_at)
        .limit(CANDIDATES)
    )
    with engine.connect() as conn:
        candidates = list(conn.execute(query))
    for row in candidates:
        if row.status == RUNNING:
            expired = row.lease_until is None or row.lease_until < now
            if not expired and not (row.lease_owner and owner_dead(row.lease_owner)):
                continue
            guard = and_(jobs.c.status == RUNNING, _same_owner(row.lease_owner))
            if expired:
                guard = and_(guard, or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now))
        else:
            guard = jobs.c.status == QUEUED
        stmt = (
            update(jobs)
            .where(jobs.c.id == row.id, guard)
            .values(
                status=RUNNING,
                lease_owner=owner,
                lease_until=now + int(lease_s * 1000),
                attempts=jobs.c.attempts + 1,
                updated_at=now,
            )
        )
        with engine.begin() as conn:
            if conn.execute(stmt).rowcount == 1:
                got = conn.execute(select(jobs).where(jobs.c.id == row.id)).first()
                return None if got is None else dict(got._mapping)
    return None


def _same_owner(owner: str | None) -> Any:
    return jobs.c.lease_owner.is_(None) if owner is None else jobs.c.lease_owner == owner


def renew(engine: Engine, job_id: str, owner: str, lease_s: float) -> bool:
    """Extend the lease; False when this owner no longer holds the job."""
    now = now_ms()
    stmt = (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.lease_owner == owner, jobs.c.status == RUNNING)
        .values(lease_until=now + int(lease_s * 1000), updated_at=now)
    )
    with engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount == 1)


def _end(engine: Engine, job_id: str, owner: str | None, status: str, error: str | None) -> bool:
    stmt = update(jobs).where(jobs.c.id == job_id)
    if owner is not None:
        stmt = stmt.where(jobs.c.lease_owner == owner)
    stmt = stmt.values(status=status, error=error, lease_until=None, updated_at=now_ms())
    with engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount == 1)


def finish(engine: Engine, job_id: str, owner: str) -> bool:
    return _end(engine, job_id, owner, DONE, None)


def fail(engine: Engine, job_id: str, owner: str, error: str) -> bool:
    return _end(engine, job_id, owner, FAILED, error[:2000])


def release(engine: Engine, job_id: str, owner: str) -> bool:
    """Give a running job back to the queue (the process is stopping; another resumes it)."""
    stmt = (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.lease_owner == owner, jobs.c.status == RUNNING)
        .values(status=QUEUED, lease_owner=None, lease_until=None, updated_at=now_ms())
    )
    with engine.begin() as conn:
        return bool(conn.execute(stmt).rowcount == 1)


def cancel_ref(engine: Engine, kind: str, ref_id: str) -> int:
    """Cancel the queued jobs about ``ref_id`` (a running one stops by its own checks)."""
    stmt = (
        update(jobs)
        .where(jobs.c.kind == kind, jobs.c.ref_id == ref_id, jobs.c.status == QUEUED)
        .values(status=CANCELLED, updated_at=now_ms())
    )
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount)


def get_job(engine: Engine, job_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    return None if row is None else dict(row._mapping)


def jobs_for(engine: Engine, kind: str, ref_id: str) -> list[dict[str, Any]]:
    query = select(jobs).where(jobs.c.kind == kind, jobs.c.ref_id == ref_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query.order_by(jobs.c.created_at))]
