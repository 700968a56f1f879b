"""Queries on API keys. Only hashes are stored; the key itself is shown once at creation."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Engine, insert, select, update

from heliograph.store.schema import api_keys


def insert_key(
    engine: Engine, *, org_id: str, name: str, scope: str, prefix: str, key_hash: str
) -> str:
    key_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                id=key_id,
                org_id=org_id,
                name=name,
                scope=scope,
                prefix=prefix,
                key_hash=key_hash,
                created_at=int(time.time() * 1000),
            )
        )
    return key_id


def active_keys(engine: Engine) -> list[tuple[str, str, str, str]]:
    """(key_hash, key_id, org_id, scope) of every key that is not revoked."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(api_keys.c.key_hash, api_keys.c.id, api_keys.c.org_id, api_keys.c.scope).where(
                api_keys.c.revoked_at.is_(None)
            )
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


def list_keys(engine: Engine, org_id: str | None = None) -> list[dict[str, Any]]:
    query = select(
        api_keys.c.id,
        api_keys.c.org_id,
        api_keys.c.name,
        api_keys.c.scope,
        api_keys.c.prefix,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
        api_keys.c.last_used_at,
    ).order_by(api_keys.c.created_at)
    if org_id is not None:
        query = query.where(api_keys.c.org_id == org_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def revoke_key(engine: Engine, key_id_or_prefix: str, org_id: str | None = None) -> int:
    """Revoke by id or by the displayed prefix; returns how many keys were revoked."""
    cond = (api_keys.c.id == key_id_or_prefix) | (api_keys.c.prefix == key_id_or_prefix)
    stmt = update(api_keys).where(cond, api_keys.c.revoked_at.is_(None))
    if org_id is not None:
        stmt = stmt.where(api_keys.c.org_id == org_id)
    with engine.begin() as conn:
        result = conn.execute(stmt.values(revoked_at=int(time.time() * 1000)))
        return int(result.rowcount)


def touch_keys(engine: Engine, last_used: dict[str, int]) -> None:
    """Advance keys' last-use times (called by the writer, never on the request path)."""
    if not last_used:
        return
    with engine.begin() as conn:
        for key_id, ts in last_used.items():
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .where((api_keys.c.last_used_at.is_(None)) | (api_keys.c.last_used_at < ts))
                .values(last_used_at=ts)
            )
