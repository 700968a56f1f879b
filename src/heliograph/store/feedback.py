"""Feedback (a thumbs up or down) and named scores attached to request records.

Both are upserts keyed by the request (and score name), so a client that retries, or changes
its mind, never creates duplicates. They live in their own tables rather than on the request
row because they arrive later, from a different caller, and the writer owns request rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from heliograph.store.filters import holds_nul
from heliograph.store.schema import request_feedback, request_scores, requests


def _upsert(conn: Connection, table: Any, keys: list[str], values: list[dict[str, Any]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(values)
    changed = {
        name: stmt.excluded[name]
        for name in ("value", "rating", "created_at", "reason")
        if name in table.c
    }
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changed))


def set_feedback(engine: Engine, org_id: str, rid: str, rating: bool) -> bool:
    """Record the rating of ``rid``; False if the record is not in ``org_id``."""
    with engine.begin() as conn:
        if not _owned(conn, org_id, rid):
            return False
        row = {"request_id": rid, "org_id": org_id, "rating": rating, "created_at": _now()}
        _upsert(conn, request_feedback, ["request_id"], [row])
    return True


def set_scores(engine: Engine, org_id: str, rid: str, scores: Mapping[str, float]) -> bool:
    """Record (or replace) the named scores of ``rid``; False if it is not in ``org_id``."""
    with engine.begin() as conn:
        if not _owned(conn, org_id, rid):
            return False
        now = _now()
        rows = [
            {"request_id": rid, "name": name, "org_id": org_id, "value": value, "created_at": now}
            for name, value in scores.items()
        ]
        if rows:
            _upsert(conn, request_scores, ["request_id", "name"], rows)
    return True


def add_annotations(
    conn: Connection, feedback: list[dict[str, Any]], scores: list[dict[str, Any]]
) -> None:
    """Insert imported feedback and score rows in the caller's transaction; rows already
    there are kept (an import never overwrites what was set since)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for table, rows in ((request_feedback, feedback), (request_scores, scores)):
        for i in range(0, len(rows), 500):
            stmt = dialect.insert(table).values(rows[i : i + 500])
            conn.execute(stmt.on_conflict_do_nothing())


def annotations_for(
    conn: Connection, org_id: str | None, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """``{id: {"feedback": bool | None, "scores": {name: value}}}`` for each of ``ids``."""
    wanted = list(dict.fromkeys(ids))
    out: dict[str, dict[str, Any]] = {rid: {"feedback": None, "scores": {}} for rid in wanted}
    if not wanted:
        return out
    fb = select(request_feedback.c.request_id, request_feedback.c.rating).where(
        request_feedback.c.request_id.in_(wanted)
    )
    sc = select(request_scores.c.request_id, request_scores.c.name, request_scores.c.value).where(
        request_scores.c.request_id.in_(wanted)
    )
    if org_id is not None:
        fb = fb.where(request_feedback.c.org_id == org_id)
        sc = sc.where(request_scores.c.org_id == org_id)
    for rid, rating in conn.execute(fb):
        out[rid]["feedback"] = bool(rating)
    for rid, name, value in conn.execute(sc.order_by(request_scores.c.name)):
        out[rid]["scores"][name] = int(value) if float(value).is_integer() else value
    return out


def annotate(conn: Connection, org_id: str | None, rows: list[dict[str, Any]]) -> None:
    """Add ``feedback`` and ``scores`` to API-shaped rows, in place (two queries per call)."""
    found = annotations_for(conn, org_id, (r["id"] for r in rows))
    for row in rows:
        row.update(found[row["id"]])


def _owned(conn: Connection, org_id: str, rid: str) -> bool:
    if holds_nul(rid):
        return False
    query = select(requests.c.id).where(requests.c.id == rid, requests.c.org_id == org_id)
    return conn.execute(query).first() is not None


def _now() -> int:
    return int(time.time() * 1000)
