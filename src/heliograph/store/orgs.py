"""Queries on organizations."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import Engine, func, insert, select

from heliograph.store.schema import organizations


def create_org(engine: Engine, name: str) -> str:
    org_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(organizations).values(id=org_id, name=name, created_at=int(time.time() * 1000))
        )
    return org_id


def count_orgs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(organizations)).scalar_one())


def first_org(engine: Engine) -> str | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(organizations.c.id).order_by(organizations.c.created_at).limit(1)
        ).first()
    return row[0] if row else None


def list_orgs(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(organizations).order_by(organizations.c.created_at))
        return [dict(r._mapping) for r in rows]
