"""Writing ingested spans: idempotent by (organization, trace, span), since exporters retry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Engine, select

from heliograph.store.schema_ops import spans

SPAN_COLUMNS = tuple(c.name for c in spans.columns)
_JSON = frozenset(c.name for c in spans.columns if isinstance(c.type, JSON))
# Identifiers from the table definition; values are bound parameters.
_INSERT = (
    f'INSERT INTO "spans" ({", ".join(SPAN_COLUMNS)}) VALUES ({{marks}}) '  # noqa: S608
    "ON CONFLICT (org_id, trace_id, span_id) DO NOTHING"
)


def insert_spans(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert span rows (every column of ``spans`` given) in the caller's transaction; a span
    already stored is left as it was. Returns how many were new.

    One prepared statement run for every row (``executemany``): compiling a multi-row
    ``INSERT`` of hundreds of rows each time cost more than storing them.
    """
    if not rows:
        return 0
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    sql = _INSERT.format(marks=", ".join([mark] * len(SPAN_COLUMNS)))
    values = [
        tuple(
            orjson.dumps(row[name]).decode()
            if name in _JSON and row[name] is not None
            else row[name]
            for name in SPAN_COLUMNS
        )
        for row in rows
    ]
    result = conn.exec_driver_sql(sql, values)
    return max(int(result.rowcount), 0)


def spans_of_trace(engine: Engine, org_id: str, trace_id: str) -> list[dict[str, Any]]:
    """One organization's stored spans of one trace, earliest first."""
    query = (
        select(spans)
        .where(spans.c.org_id == org_id, spans.c.trace_id == trace_id.lower())
        .order_by(spans.c.start_ns, spans.c.span_id)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
