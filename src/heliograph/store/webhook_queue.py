"""Record webhook deliveries: fan-out from the outbox, leases, outcomes, the delivery log.

**Fan-out.** ``fan_out`` reads the oldest outbox rows (bounded), and for each enabled
endpoint of their organizations selects, in SQL with the endpoint's filter, which of those
records it wants, inserts one delivery per (endpoint, record) (a duplicate is a no-op: the
pair is unique) and deletes the outbox rows, all in one transaction: two job processes doing
it at once insert each delivery once, and a crash leaves the outbox rows for the next pass.

**Leases.** ``claim`` takes due deliveries of one endpoint at a time with a guarded UPDATE
(still pending, due, and no live lease) that sets ``lease_owner`` and ``lease_until`` and
counts the attempt, so two processes never send the same delivery at once; a process that
died mid-send lets its lease run out and the delivery is sent again (at-least-once: the
receiver de-duplicates on the record id). ``finish`` records the outcome only while its lease
is held. Claiming per endpoint keeps a receiver with a long backlog from starving the others.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from heliograph.store import filter_params, filters
from heliograph.store.schema import requests
from heliograph.store.schema_ops import webhook_deliveries, webhook_endpoints, webhook_outbox
from heliograph.store.webhooks import now_ms

log = logging.getLogger("heliograph.webhooks")

FAN_OUT_BATCH = 1000
RECORD_EVENT = "record.created"
TEST_EVENT = "webhook.test"
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 900.0
LOG_LIMIT = 200
d = webhook_deliveries


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this process holds until its lease runs out, with what sending needs."""

    id: str
    endpoint_id: str
    org_id: str
    request_id: str
    event: str
    attempts: int  # including this one
    created_at: int
    url: str
    secret: str
    include_bodies: bool


def fan_out(engine: Engine, limit: int = FAN_OUT_BATCH) -> int:
    """Turn up to ``limit`` outbox rows into deliveries; returns how many were created."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(webhook_outbox.c.request_id, webhook_outbox.c.org_id)
            .order_by(webhook_outbox.c.created_at, webhook_outbox.c.request_id)
            .limit(limit)
        ).all()
        if not rows:
            return 0
        by_org: dict[str, list[str]] = {}
        for rid, org in rows:
            by_org.setdefault(org, []).append(rid)
        endpoints = conn.execute(
            select(
                webhook_endpoints.c.id, webhook_endpoints.c.org_id, webhook_endpoints.c["filter"]
            ).where(webhook_endpoints.c.org_id.in_(by_org), webhook_endpoints.c.enabled.is_(True))
        ).all()
        created = sum(
            _fan_endpoint(conn, e.id, e.org_id, e.filter, by_org[e.org_id]) for e in endpoints
        )
        conn.execute(
            delete(webhook_outbox).where(webhook_outbox.c.request_id.in_([r[0] for r in rows]))
        )
    return created


def _fan_endpoint(
    conn: Connection, endpoint_id: str, org_id: str, params: dict[str, str] | None, ids: list[str]
) -> int:
    try:
        where = filter_params.parse((params or {}).items())
    except filters.FilterError as exc:  # checked when saved; a later version may read it apart
        log.warning("webhook endpoint %s: bad filter, records skipped: %s", endpoint_id, exc)
        return 0
    matching = conn.execute(
        select(requests.c.id).where(
            requests.c.org_id == org_id, requests.c.id.in_(ids), filters.condition(org_id, where)
        )
    ).scalars()
    now = now_ms()
    values = [_delivery(endpoint_id, org_id, rid, RECORD_EVENT, now) for rid in matching]
    return _insert(conn, values)


def _delivery(endpoint_id: str, org_id: str, rid: str, event: str, now: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "endpoint_id": endpoint_id,
        "org_id": org_id,
        "request_id": rid,
        "event": event,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _insert(conn: Connection, values: list[dict[str, Any]]) -> int:
    if not values:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(d).values(values)
    fresh = stmt.on_conflict_do_nothing(index_elements=["endpoint_id", "request_id"])
    return len(conn.execute(fresh.returning(d.c.id)).all())


def enqueue_test(engine: Engine, org_id: str, endpoint_id: str) -> str:
    """Queue a test event for an endpoint (the dashboard's button); its delivery id."""
    row = _delivery(endpoint_id, org_id, str(uuid.uuid4()), TEST_EVENT, now_ms())
    with engine.begin() as conn:
        _insert(conn, [row])
    return str(row["id"])


def enabled_endpoints(engine: Engine) -> list[str]:
    """Every enabled endpoint (the sender's round): each is then claimed from on its own
    index range, so a long backlog of one endpoint is never scanned for another's."""
    query = (
        select(webhook_endpoints.c.id)
        .where(webhook_endpoints.c.enabled.is_(True))
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _due(now: int) -> Any:
    return and_(
        d.c.status == "pending",
        d.c.next_attempt_at <= now,
        or_(d.c.lease_until.is_(None), d.c.lease_until < now),
    )


def claim(engine: Engine, endpoint_id: str, owner: str, limit: int, lease_ms: int) -> list[Claimed]:
    """Up to ``limit`` due deliveries of one enabled endpoint, oldest due first, each leased
    to ``owner``; one another process holds is left alone, one whose lease ran out is taken."""
    if limit <= 0:
        return []
    now = now_ms()
    e = webhook_endpoints
    query = (
        select(
            d.c.id,
            d.c.org_id,
            d.c.request_id,
            d.c.event,
            d.c.attempts,
            d.c.created_at,
            e.c.url,
            e.c.secret,
            e.c.include_bodies,
        )
        .join(e, e.c.id == d.c.endpoint_id)
        .where(d.c.endpoint_id == endpoint_id, e.c.enabled.is_(True), _due(now))
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out: list[Claimed] = []
    for row in rows:
        with engine.begin() as conn:
            took = conn.execute(
                update(d)
                .where(d.c.id == row.id, _due(now))
                .values(lease_owner=owner, lease_until=now + lease_ms, attempts=d.c.attempts + 1)
            )
        if took.rowcount == 1:
            out.append(
                Claimed(
                    row.id,
                    endpoint_id,
                    row.org_id,
                    row.request_id,
                    row.event,
                    row.attempts + 1,
                    row.created_at,
                    row.url,
                    row.secret,
                    bool(row.include_bodies),
                )
            )
    return out


def backoff_ms(attempts: int) -> int:
    """Wait before the next attempt: doubling from ``BACKOFF_BASE_S``, capped, with jitter
    (half to all of it) so a receiver that comes back is not hit by every retry at once."""
    full = min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S)
    return int(full * 1000 * random.uniform(0.5, 1.0))


def finish(
    engine: Engine,
    entry: Claimed,
    owner: str,
    *,
    http_status: int | None,
    error: str | None,
    retry_ms: int,
) -> str | None:
    """Record one attempt: delivered (``error`` None), retried later, or failed once
    ``retry_ms`` after the delivery was created has passed. Returns the new status, or None,
    recording nothing, if ``owner`` no longer holds the lease."""
    now = now_ms()
    values: dict[str, Any]
    if error is None:
        status, values = "delivered", {"delivered_at": now, "last_error": None}
    else:
        wait = backoff_ms(entry.attempts)
        status = "failed" if now + wait > entry.created_at + retry_ms else "pending"
        values = {"next_attempt_at": now + wait, "last_error": error[:1000]}
    with engine.begin() as conn:
        held = conn.execute(
            update(d)
            .where(d.c.id == entry.id, d.c.status == "pending", d.c.lease_owner == owner)
            .values(
                status=status,
                last_status=http_status,
                lease_owner=None,
                lease_until=None,
                updated_at=now,
                **values,
            )
        )
        if held.rowcount != 1:
            return None
        health = (
            {"last_success_at": now}
            if error is None
            else {"last_error": error[:1000], "last_error_at": now}
        )
        conn.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == entry.endpoint_id)
            .values(health)
        )
    return status


def release(engine: Engine, entry: Claimed, owner: str) -> None:
    """Give a delivery back, due at once and its attempt not counted (this process stops)."""
    with engine.begin() as conn:
        conn.execute(
            update(d)
            .where(d.c.id == entry.id, d.c.status == "pending", d.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, attempts=d.c.attempts - 1)
        )


def deliveries(
    engine: Engine, org_id: str, endpoint_id: str, limit: int = 50, status: str | None = None
) -> list[dict[str, Any]]:
    """An endpoint's delivery log, newest first."""
    query = (
        select(d)
        .where(d.c.org_id == org_id, d.c.endpoint_id == endpoint_id)
        .order_by(d.c.created_at.desc(), d.c.id.desc())
        .limit(min(limit, LOG_LIMIT))
    )
    if status is not None:
        query = query.where(d.c.status == status)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def counts(engine: Engine, org_id: str) -> dict[str, dict[str, int]]:
    """Deliveries per endpoint and status, for the organization's endpoint list."""
    query = (
        select(d.c.endpoint_id, d.c.status, func.count())
        .where(d.c.org_id == org_id)
        .group_by(d.c.endpoint_id, d.c.status)
    )
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for endpoint_id, status, n in conn.execute(query):
            out.setdefault(endpoint_id, {})[status] = int(n)
    return out


def prune(engine: Engine, older_than_ms: int) -> int:
    """Delete finished deliveries (delivered or failed) last touched before the cutoff."""
    with engine.begin() as conn:
        gone = conn.execute(
            delete(d).where(d.c.status.in_(("delivered", "failed")), d.c.updated_at < older_than_ms)
        )
    return int(gone.rowcount)
