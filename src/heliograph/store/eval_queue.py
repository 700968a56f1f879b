"""The online evaluation queue: sampling records into it, claiming and finishing entries.

**Sampling.** Each pass of a rule reads the records after its cursor in ``(created_at, id)``
order, at most ``limit`` of them (the cheap part of the ``(org_id, created_at, id)`` index),
applies the rule's filter in SQL to that slice only, keeps the ids whose hash of
``(rule id, request id)`` falls under the sample rate, inserts them into ``eval_queue`` (a
duplicate is a no-op: the pair is unique) and moves the cursor to the end of the slice, all in
one transaction. A selective filter therefore never turns one pass into a scan of the table,
and a pass that is run twice, or by two processes at once, samples exactly the same ids.

Only LLM calls are sampled, and never experiment cells or judge calls (``NOT_PRODUCTION``).

**Late records.** ``created_at`` is when a request *started*; the writer stores it when it
ended, in batches, and a crash's interrupted records are salvaged later still. So a pass only
reads records that started before ``horizon_ms`` (the caller passes now minus a lag, the
``online_eval_lag_s`` setting): a record that lands within the lag of its start is never
skipped, whatever order the batches commit in. The insert order would be exact, but neither
dialect has one we can read without a column the writer fills on the hot path (PostgreSQL's
sequences and ``xmin`` are not commit-ordered either); a record that lands later than the lag
(a stream longer than the lag, a store outage that held records in the spool) is not sampled,
which costs a score, never a wrong one.

**Scoring.** A worker claims an entry with a guarded UPDATE (still pending, and no live lease)
that sets its lease; it finishes the entry with another guarded UPDATE (its own lease still
held) in the transaction that stores the score, so if its lease ran out and another worker
took the entry over, only one of them stores anything.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, not_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from heliograph.store import filters
from heliograph.store.online_eval import now_ms, split_cursor
from heliograph.store.schema import (
    eval_queue,
    online_eval_rules,
    request_properties,
    request_scores,
    requests,
)

UNIT = 2**64
# Experiment cells and judge calls go through the gateway too, marked with these properties;
# they are not production traffic, and a judge rule scoring judge calls would feed itself.
NOT_PRODUCTION = ("experiment", "judge")


@dataclass(frozen=True, slots=True)
class Pass:
    """What one sampler pass of one rule did."""

    considered: int  # records in the slice, matching the filter or not
    enqueued: int  # newly queued (already queued ids are not counted again)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A queue entry this worker holds until ``lease_until``."""

    id: str
    org_id: str
    rule_id: str
    request_id: str
    attempts: int  # including this one


def sampled(rule_id: str, request_id: str, rate: float) -> bool:
    """Whether the pair falls in the sample: the same answer on every run and process."""
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{rule_id}\x00{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < rate * UNIT


def enabled_rules(engine: Engine) -> list[dict[str, Any]]:
    """Every enabled rule of every organization, oldest first (the sampler's round)."""
    query = (
        select(
            online_eval_rules.c.id,
            online_eval_rules.c.org_id,
            online_eval_rules.c.name,
            online_eval_rules.c.evaluator,
            online_eval_rules.c["filter"],
            online_eval_rules.c.sample_rate,
            online_eval_rules.c.cursor,
        )
        .where(online_eval_rules.c.enabled.is_(True))
        .order_by(online_eval_rules.c.created_at, online_eval_rules.c.id)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def sample_rule(
    engine: Engine,
    rule: dict[str, Any],
    where: filters.Filter,
    horizon_ms: int,
    limit: int,
) -> Pass:
    """One bounded pass of ``rule`` (a row of ``enabled_rules``) over records that started
    before ``horizon_ms``; ``where`` is its parsed filter."""
    org_id = rule["org_id"]
    at, rid = split_cursor(rule["cursor"])
    after = or_(requests.c.created_at > at, and_(requests.c.created_at == at, requests.c.id > rid))
    in_org = (requests.c.org_id == org_id, after, requests.c.created_at < horizon_ms)
    now = now_ms()
    try:
        return _pass(engine, rule, where, in_org, limit, now)
    except _Overtaken:  # another pass moved the cursor first: its enqueues stand
        return Pass(0, 0)


class _Overtaken(Exception):
    """The cursor moved under this pass; its transaction is rolled back."""


def _pass(
    engine: Engine,
    rule: dict[str, Any],
    where: filters.Filter,
    in_org: tuple[Any, ...],
    limit: int,
    now: int,
) -> Pass:
    org_id, rule_id, old = rule["org_id"], rule["id"], rule["cursor"]
    with engine.begin() as conn:
        keys = conn.execute(
            select(requests.c.created_at, requests.c.id)
            .where(*in_org)
            .order_by(requests.c.created_at, requests.c.id)
            .limit(limit)
        ).all()
        enqueued = 0
        if keys:
            end_at, end_id = keys[-1]
            upto = or_(
                requests.c.created_at < end_at,
                and_(requests.c.created_at == end_at, requests.c.id <= end_id),
            )
            ids = conn.execute(
                select(requests.c.id).where(
                    *in_org,
                    upto,
                    requests.c.kind == "llm",
                    not_(_marked()),
                    filters.condition(org_id, where),
                )
            ).scalars()
            chosen = [i for i in ids if sampled(rule_id, i, float(rule["sample_rate"]))]
            enqueued = _enqueue(conn, org_id, rule_id, chosen, now)
        values: dict[str, Any] = {"last_run_at": now}
        if keys:
            values["cursor"] = f"{keys[-1][0]}:{keys[-1][1]}"
        guard = (
            online_eval_rules.c.cursor.is_(None)
            if old is None
            else online_eval_rules.c.cursor == old
        )
        moved = conn.execute(
            update(online_eval_rules).where(online_eval_rules.c.id == rule_id, guard).values(values)
        )
        if keys and not moved.rowcount:
            raise _Overtaken
    return Pass(len(keys), enqueued)


def _marked() -> Any:
    return exists().where(
        request_properties.c.request_id == requests.c.id,
        request_properties.c.name.in_(NOT_PRODUCTION),
    )


def _enqueue(conn: Connection, org_id: str, rule_id: str, ids: list[str], now: int) -> int:
    if not ids:
        return 0
    rows = [
        {
            "id": str(uuid.uuid4()),
            "org_id": org_id,
            "rule_id": rule_id,
            "request_id": rid,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
        }
        for rid in ids
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(eval_queue).values(rows)
    fresh = stmt.on_conflict_do_nothing(index_elements=["rule_id", "request_id"])
    return len(conn.execute(fresh.returning(eval_queue.c.id)).all())


def claim(engine: Engine, owner: str, limit: int, lease_ms: int) -> list[Claimed]:
    """Up to ``limit`` pending entries, oldest first, each leased to ``owner``; an entry
    another process holds (a live lease) is left alone, one whose lease ran out is taken."""
    now = now_ms()
    free = and_(
        eval_queue.c.status == "pending",
        or_(eval_queue.c.lease_until.is_(None), eval_queue.c.lease_until < now),
    )
    candidates = (
        select(
            eval_queue.c.id,
            eval_queue.c.org_id,
            eval_queue.c.rule_id,
            eval_queue.c.request_id,
            eval_queue.c.attempts,
        )
        .where(free)
        .order_by(eval_queue.c.created_at, eval_queue.c.id)
        .limit(limit)
    )
    out: list[Claimed] = []
    with engine.connect() as conn:
        rows = conn.execute(candidates).all()
    for row in rows:
        with engine.begin() as conn:
            took = conn.execute(
                update(eval_queue)
                .where(eval_queue.c.id == row.id, free)
                .values(
                    lease_owner=owner,
                    lease_until=now + lease_ms,
                    attempts=eval_queue.c.attempts + 1,
                )
            )
        if took.rowcount == 1:
            out.append(Claimed(row.id, row.org_id, row.rule_id, row.request_id, row.attempts + 1))
    return out


def rule_of(engine: Engine, rule_id: str) -> dict[str, Any] | None:
    """The rule an entry belongs to (its evaluator spec), or None once deleted."""
    query = select(online_eval_rules.c.name, online_eval_rules.c.evaluator).where(
        online_eval_rules.c.id == rule_id
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def finish(
    engine: Engine,
    entry: Claimed,
    owner: str,
    *,
    score: tuple[str, float, str] | None = None,
    error: str | None = None,
) -> bool:
    """Mark ``entry`` done (storing ``score`` = (name, value, reason) on its record) or an
    error; False, storing nothing, if ``owner`` no longer holds it."""
    now = now_ms()
    with engine.begin() as conn:
        held = conn.execute(
            update(eval_queue)
            .where(
                eval_queue.c.id == entry.id,
                eval_queue.c.status == "pending",
                eval_queue.c.lease_owner == owner,
            )
            .values(
                status="error" if error is not None else "done",
                error=error,
                done_at=now,
                lease_owner=None,
                lease_until=None,
            )
        )
        if held.rowcount != 1:
            return False
        if score is not None:
            name, value, reason = score
            row = {
                "request_id": entry.request_id,
                "name": name,
                "org_id": entry.org_id,
                "value": value,
                "reason": reason,
                "created_at": now,
            }
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(request_scores).values([row])
            changed = {k: stmt.excluded[k] for k in ("value", "reason", "created_at")}
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["request_id", "name"], set_=changed)
            )
    return True


def release(engine: Engine, entry: Claimed, owner: str) -> None:
    """Give an entry back (pending, unleased) after a failure that was not its fault."""
    with engine.begin() as conn:
        conn.execute(
            update(eval_queue)
            .where(eval_queue.c.id == entry.id, eval_queue.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def renew(engine: Engine, ids: list[str], owner: str, lease_ms: int) -> int:
    """Extend ``owner``'s leases of the entries ``ids`` still pending (a judge call in
    flight); returns how many it still holds."""
    if not ids:
        return 0
    with engine.begin() as conn:
        held = conn.execute(
            update(eval_queue)
            .where(
                eval_queue.c.id.in_(ids),
                eval_queue.c.status == "pending",
                eval_queue.c.lease_owner == owner,
            )
            .values(lease_until=now_ms() + lease_ms)
        )
    return int(held.rowcount)
