"""Saved evaluators: a name per organization and its spec (``evals.specs``), editable.

Editing or deleting one never changes an experiment: an experiment copies the specs it runs
when it is created. A deleted evaluator is archived, so its name can be used again.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from heliograph.store.schema import evaluators


class DuplicateName(Exception):
    """A live evaluator of this organization already has the name."""


def _now() -> int:
    return int(time.time() * 1000)


def _live(org_id: str, name: str) -> Any:
    return and_(
        evaluators.c.org_id == org_id,
        evaluators.c.name == name,
        evaluators.c.archived_at.is_(None),
    )


def create_evaluator(
    engine: Engine, org_id: str, name: str, spec: dict[str, Any], by: str | None
) -> dict[str, Any]:
    now = _now()
    row = {
        "id": str(uuid.uuid4()),
        "org_id": org_id,
        "name": name,
        "spec": spec,
        "created_at": now,
        "created_by": by,
        "updated_at": now,
        "archived_at": None,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(evaluators).values(row))
    except IntegrityError as exc:
        raise DuplicateName(name) from exc
    return row


def list_evaluators(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    query = (
        select(evaluators)
        .where(evaluators.c.org_id == org_id, evaluators.c.archived_at.is_(None))
        .order_by(evaluators.c.name)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_evaluator(engine: Engine, org_id: str, name: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(evaluators).where(_live(org_id, name))).first()
    return None if row is None else dict(row._mapping)


def update_evaluator(
    engine: Engine, org_id: str, name: str, spec: dict[str, Any]
) -> dict[str, Any] | None:
    with engine.begin() as conn:
        done = conn.execute(
            update(evaluators).where(_live(org_id, name)).values(spec=spec, updated_at=_now())
        )
    return get_evaluator(engine, org_id, name) if done.rowcount else None


def delete_evaluator(engine: Engine, org_id: str, name: str) -> bool:
    with engine.begin() as conn:
        done = conn.execute(
            update(evaluators).where(_live(org_id, name)).values(archived_at=_now())
        )
    return bool(done.rowcount)
