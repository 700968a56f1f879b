"""Budgets in the store: their definitions, and their usage when no Redis is configured.

Usage is settled spend per bucket (``budget_spend``) plus what gateway workers reserved and
have not settled (``budget_holds``, each expiring). A reservation and a settlement first bump
the budget's ``seq``: the row lock on PostgreSQL, the write lock on SQLite, so the sums they
read and the row they change are one consistent step, however many workers and replicas
reserve at once.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from heliograph.store.schema import budget_holds, budget_spend, budgets
from heliograph.store.shared import _dialect_insert

FIELDS = (
    "name", "scope", "window", "timezone", "limit_unit", "limit_amount", "action", "thresholds",
)  # fmt: skip


class DuplicateBudget(Exception):
    """A budget with this name already exists in the organization."""


class Settlement(NamedTuple):
    """One record's usage against one budget: its reservation goes, its real usage stays."""

    budget_id: str
    hold_id: str | None  # None: nothing was reserved (an alert-only budget)
    wk: int  # the window key the reservation was held under
    estimate: int
    bucket: int
    actual: int


def _now() -> int:
    return int(time.time() * 1000)


def create_budget(
    engine: Engine, org_id: str, fields: Mapping[str, Any], by: str | None, source: str = "api"
) -> dict[str, Any]:
    now = _now()
    row = {
        "id": str(uuid.uuid4()),
        "org_id": org_id,
        **{k: fields[k] for k in FIELDS},
        "source": source,
        "created_at": now,
        "created_by": by,
        "updated_at": now,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(budgets).values(row))
    except IntegrityError as exc:
        raise DuplicateBudget(fields["name"]) from exc
    return row


def update_budget(
    engine: Engine, org_id: str, budget_id: str, fields: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Replace a budget's definition (its usage stays); None if there is no such budget."""
    values = {k: fields[k] for k in FIELDS}
    try:
        with engine.begin() as conn:
            done = conn.execute(
                update(budgets)
                .where(budgets.c.id == budget_id, budgets.c.org_id == org_id)
                .values(**values, updated_at=_now())
            )
    except IntegrityError as exc:
        raise DuplicateBudget(fields["name"]) from exc
    return get_budget(engine, org_id, budget_id) if done.rowcount else None


def list_budgets(engine: Engine, org_id: str | None = None) -> list[dict[str, Any]]:
    """An organization's budgets by name; every organization's with ``org_id`` None."""
    query = select(budgets).order_by(budgets.c.org_id, budgets.c.name)
    if org_id is not None:
        query = query.where(budgets.c.org_id == org_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_budget(engine: Engine, org_id: str, budget_id: str) -> dict[str, Any] | None:
    query = select(budgets).where(budgets.c.id == budget_id, budgets.c.org_id == org_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)


def delete_budget(engine: Engine, org_id: str, budget_id: str) -> bool:
    with engine.begin() as conn:
        done = conn.execute(
            delete(budgets).where(budgets.c.id == budget_id, budgets.c.org_id == org_id)
        )
        if not done.rowcount:
            return False
        conn.execute(delete(budget_spend).where(budget_spend.c.budget_id == budget_id))
        conn.execute(delete(budget_holds).where(budget_holds.c.budget_id == budget_id))
    return True


def sync_config(engine: Engine, org_id: str, defs: Iterable[Mapping[str, Any]]) -> None:
    """Make the organization's config-sourced budgets exactly ``defs`` (checked definitions),
    by name: new ones are created, changed ones updated (usage kept), dropped ones deleted."""
    wanted = {d["name"]: d for d in defs}
    have = {r["name"]: r for r in list_budgets(engine, org_id) if r["source"] == "config"}
    for name, row in have.items():
        if name not in wanted:
            delete_budget(engine, org_id, row["id"])
    for name, fields in wanted.items():
        if name in have:
            update_budget(engine, org_id, have[name]["id"], fields)
            continue
        try:
            create_budget(engine, org_id, fields, "config.toml", source="config")
        except DuplicateBudget:  # one made through the API: config takes it over
            with engine.begin() as conn:
                conn.execute(
                    update(budgets)
                    .where(budgets.c.org_id == org_id, budgets.c.name == name)
                    .values(**{k: fields[k] for k in FIELDS}, source="config", updated_at=_now())
                )


def _lock(conn: Connection, budget_id: str) -> bool:
    done = conn.execute(
        update(budgets).where(budgets.c.id == budget_id).values(seq=budgets.c.seq + 1)
    )
    return bool(done.rowcount)


def _spent_held(
    conn: Connection, budget_id: str, wk: int, first: int, last: int, now: int
) -> tuple[int, int]:
    """(settled spend in buckets first..last, unexpired holds under window key wk)."""
    spent = conn.execute(
        select(func.coalesce(func.sum(budget_spend.c.amount), 0)).where(
            budget_spend.c.budget_id == budget_id,
            budget_spend.c.bucket >= first,
            budget_spend.c.bucket <= last,
        )
    ).scalar_one()
    held = conn.execute(
        select(func.coalesce(func.sum(budget_holds.c.amount), 0)).where(
            budget_holds.c.budget_id == budget_id,
            budget_holds.c.wk == wk,
            budget_holds.c.expires_at > now,
        )
    ).scalar_one()
    return int(spent), int(held)


def reserve(
    engine: Engine,
    budget_id: str,
    limit: int,
    span: tuple[int, int, int],
    hold_id: str,
    need: int,
    want: int,
    ttl_ms: int,
) -> tuple[int, int] | None:
    """Reserve at least ``need`` and up to ``want`` under ``hold_id``: (granted, used after);
    granted is 0 when ``need`` does not fit. None when the budget no longer exists."""
    wk, first, last = span
    now = _now()
    with engine.begin() as conn:
        if not _lock(conn, budget_id):
            return None
        conn.execute(
            delete(budget_holds).where(
                budget_holds.c.budget_id == budget_id, budget_holds.c.expires_at <= now
            )
        )
        used = sum(_spent_held(conn, budget_id, wk, first, last, now))
        room = limit - used
        if room < need:
            return 0, used
        granted = min(max(want, need), room)
        stmt = _dialect_insert(engine, budget_holds).values(
            hold_id=hold_id, budget_id=budget_id, wk=wk, amount=granted, expires_at=now + ttl_ms
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["hold_id"],
                set_={
                    "amount": budget_holds.c.amount + stmt.excluded.amount,
                    "expires_at": stmt.excluded.expires_at,
                },
            )
        )
        return granted, used + granted


def release(engine: Engine, hold_id: str, amount: int) -> None:
    """Give back ``amount`` of a reservation a worker will not use."""
    with engine.begin() as conn:
        _lower_hold(conn, hold_id, amount)


def _lower_hold(conn: Connection, hold_id: str, amount: int) -> None:
    conn.execute(
        update(budget_holds)
        .where(budget_holds.c.hold_id == hold_id)
        .values(
            amount=case((budget_holds.c.amount > amount, budget_holds.c.amount - amount), else_=0)
        )
    )


def settle(engine: Engine, items: Iterable[Settlement]) -> None:
    """Turn reservations into real usage, for records just stored (each once)."""
    with engine.begin() as conn:
        settle_with(conn, items)


# Settlement runs in every writer batch: statements built once, executed for many rows.
_LOCK_MANY = update(budgets).where(budgets.c.id == bindparam("b_id")).values(seq=budgets.c.seq + 1)
_LOWER_MANY = (
    update(budget_holds)
    .where(budget_holds.c.hold_id == bindparam("h_id"))
    .values(
        amount=case(
            (budget_holds.c.amount > bindparam("amt"), budget_holds.c.amount - bindparam("amt")),
            else_=0,
        )
    )
)


def _spend_upsert(dialect: Any) -> Any:
    stmt = dialect.insert(budget_spend)
    return stmt.on_conflict_do_update(
        index_elements=["budget_id", "bucket"],
        set_={"amount": budget_spend.c.amount + stmt.excluded.amount},
    )


_SPEND = {"postgresql": _spend_upsert(postgresql), "sqlite": _spend_upsert(sqlite)}


def settle_with(conn: Connection, items: Iterable[Settlement]) -> None:
    """``settle`` inside the caller's transaction: the writer's, which inserts the records,
    so a record and its usage are stored together or not at all."""
    holds: dict[str, int] = defaultdict(int)
    spend: dict[tuple[str, int], int] = defaultdict(int)
    for item in items:
        if item.hold_id is not None and item.estimate:
            holds[item.hold_id] += item.estimate
        spend[(item.budget_id, item.bucket)] += item.actual
    if not spend:
        return
    name = conn.dialect.name
    if name == "postgresql":  # SQLite's one writer already runs alone
        ids = sorted({b for b, _ in spend})  # one order: no deadlock
        conn.execute(_LOCK_MANY, [{"b_id": b} for b in ids])
    if holds:
        conn.execute(_LOWER_MANY, [{"h_id": h, "amt": a} for h, a in holds.items()])
    rows = [
        {"budget_id": b, "bucket": bucket, "amount": amount}
        for (b, bucket), amount in spend.items()
        if amount
    ]
    if rows:
        conn.execute(_SPEND[name], rows)


def usage(engine: Engine, budget_id: str, span: tuple[int, int, int]) -> tuple[int, int]:
    """(settled spend, unexpired reservations) in the window."""
    wk, first, last = span
    now = _now()
    with engine.connect() as conn:
        return _spent_held(conn, budget_id, wk, first, last, now)


def prune_spend(engine: Engine, before: int) -> int:
    """Drop spend buckets older than any window can reach (epoch seconds), and holds that
    expired (a reservation only sweeps its own budget's)."""
    with engine.begin() as conn:
        conn.execute(delete(budget_holds).where(budget_holds.c.expires_at <= _now()))
        return int(
            conn.execute(delete(budget_spend).where(budget_spend.c.bucket < before)).rowcount
        )
