"""Internal keys a process makes for itself (the job process's ``experiments (system)``
keys): the key lives only in that process's memory, so a key of a process that is gone can
never be used again and is revoked once it has been idle long enough."""

from __future__ import annotations

import time

from sqlalchemy import Engine, and_, or_, update

from heliograph.store.schema import api_keys


def revoke_idle(engine: Engine, org_id: str, name: str, idle_ms: int) -> int:
    """Revoke this organization's keys called ``name`` unused for ``idle_ms`` (or never used
    and older than that); returns how many."""
    now = int(time.time() * 1000)
    cutoff = now - idle_ms
    idle = or_(
        api_keys.c.last_used_at < cutoff,
        and_(api_keys.c.last_used_at.is_(None), api_keys.c.created_at < cutoff),
    )
    stmt = (
        update(api_keys)
        .where(
            api_keys.c.org_id == org_id,
            api_keys.c.name == name,
            api_keys.c.revoked_at.is_(None),
            idle,
        )
        .values(revoked_at=now)
    )
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount)
