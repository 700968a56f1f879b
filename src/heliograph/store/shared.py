"""Shared gateway state kept in the store when no Redis is configured: response cache entries
and rate-limit counters. Used by every worker process and replica that shares the store."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from heliograph.store.schema import rate_counters, response_cache


def _dialect_insert(engine: Engine, table: Any) -> Any:
    return (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(table)


def cache_entries(engine: Engine, key: str) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    query = (
        select(
            response_cache.c.slot,
            response_cache.c.status,
            response_cache.c.content_type,
            response_cache.c.body,
            response_cache.c.source_request_id,
        )
        .where(response_cache.c.cache_key == key, response_cache.c.expires_at > now)
        .order_by(response_cache.c.slot)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def put_cache_entry(
    engine: Engine,
    *,
    key: str,
    slot: int,
    org_id: str,
    status: int,
    content_type: str,
    body: bytes,
    source_request_id: str,
    ttl_s: int,
) -> None:
    now = int(time.time() * 1000)
    values = {
        "cache_key": key,
        "slot": slot,
        "org_id": org_id,
        "created_at": now,
        "expires_at": now + ttl_s * 1000,
        "status": status,
        "content_type": content_type,
        "body": body,
        "source_request_id": source_request_id,
    }
    stmt = _dialect_insert(engine, response_cache).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["cache_key", "slot"],
        set_={k: stmt.excluded[k] for k in values if k not in ("cache_key", "slot")},
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def add_to_counter(engine: Engine, key: str, window_start: int, amount: float, ttl_s: int) -> float:
    """Atomically add ``amount`` to a window's counter; returns the new total."""
    now = int(time.time() * 1000)
    stmt = _dialect_insert(engine, rate_counters).values(
        counter_key=key, window_start=window_start, amount=amount, expires_at=now + ttl_s * 1000
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["counter_key", "window_start"],
        set_={"amount": rate_counters.c.amount + stmt.excluded.amount},
    ).returning(rate_counters.c.amount)
    with engine.begin() as conn:
        return float(conn.execute(stmt).scalar_one())


def counter_values(engine: Engine, key: str, window_starts: list[int]) -> dict[int, float]:
    query = select(rate_counters.c.window_start, rate_counters.c.amount).where(
        rate_counters.c.counter_key == key, rate_counters.c.window_start.in_(window_starts)
    )
    with engine.connect() as conn:
        return {int(r[0]): float(r[1]) for r in conn.execute(query)}


def purge_expired(engine: Engine) -> int:
    """Drop expired cache entries and counters (the writer calls this now and then)."""
    now = int(time.time() * 1000)
    with engine.begin() as conn:
        a = conn.execute(delete(response_cache).where(response_cache.c.expires_at <= now))
        b = conn.execute(delete(rate_counters).where(rate_counters.c.expires_at <= now))
        return int(a.rowcount or 0) + int(b.rowcount or 0)
