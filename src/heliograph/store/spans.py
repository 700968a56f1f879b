"""Writing ingested spans: idempotent by (organization, trace, span), since exporters retry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from heliograph.store.schema import spans

SPAN_COLUMNS = tuple(c.name for c in spans.columns)


def insert_spans(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert span rows (every column of ``spans`` given) in the caller's transaction; a span
    already stored is left as it was. Returns how many were new."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    added = 0
    for i in range(0, len(rows), 500):  # SQLite's bound-parameter limit
        stmt = dialect.insert(spans).values(list(rows[i : i + 500]))
        fresh = stmt.on_conflict_do_nothing(index_elements=["org_id", "trace_id", "span_id"])
        added += len(conn.execute(fresh.returning(spans.c.span_id)).all())
    return added


def spans_of_trace(engine: Engine, org_id: str, trace_id: str) -> list[dict[str, Any]]:
    """One organization's stored spans of one trace, earliest first."""
    query = (
        select(spans)
        .where(spans.c.org_id == org_id, spans.c.trace_id == trace_id.lower())
        .order_by(spans.c.start_ns, spans.c.span_id)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
