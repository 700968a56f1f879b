"""The latest traces for the Traces page and ``GET /api/v1/traces``, aggregated in SQL.

A trace's spans (``spans``) and its records with a ``trace_id`` (``requests``) are grouped by
trace id separately, then together, newest first by their first span or record in the window.
An ingested LLM call is a span row and a record (``source = 'otlp'``): it counts once as a
span and once as an LLM call. A trace's name is its first parentless span's (its first
record's when no span was ingested). The spans' ``(org_id, start_ns)`` index and the
records' partial trace index keep the window's scan to traced rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, Engine, and_, case, cast, func, literal, select, union_all

from heliograph.store.requests import iso_ms, usd
from heliograph.store.schema import requests
from heliograph.store.schema_ops import spans
from heliograph.store.traces import FAILED, MS, operation

MAX_LIST = 500


def _span_groups(org_id: str, since_ms: int | None, until_ms: int | None) -> Any:
    c = spans.c
    conds = [c.org_id == org_id]
    if since_ms is not None:
        conds.append(c.start_ns >= since_ms * MS)
    if until_ms is not None:
        conds.append(c.start_ns < until_ms * MS)
    return (
        select(
            c.trace_id.label("trace_id"),
            (func.min(c.start_ns) // MS).label("start_ms"),  # integer division: exact
            (func.max(c.end_ns) // MS).label("end_ms"),
            func.count().label("spans"),
            literal(0).label("llm"),
            literal(0).label("cost"),
            literal(0).label("unpriced"),
            func.sum(case((c.status == "error", 1), else_=0)).label("errors"),
        )
        .where(*conds)
        .group_by(c.trace_id)
    )


def _record_groups(org_id: str, since_ms: int | None, until_ms: int | None) -> Any:
    c = requests.c
    conds = [c.org_id == org_id, c.trace_id.is_not(None)]
    if since_ms is not None:
        conds.append(c.created_at >= since_ms)
    if until_ms is not None:
        conds.append(c.created_at < until_ms)
    gateway = c.source != "otlp"  # an ingested record is counted with its span row
    return (
        select(
            c.trace_id.label("trace_id"),
            func.min(c.created_at).label("start_ms"),
            cast(func.max(c.created_at + func.coalesce(c.latency_ms, 0)), BigInteger).label(
                "end_ms"
            ),
            func.sum(case((gateway, 1), else_=0)).label("spans"),
            func.count().label("llm"),
            func.sum(case((c.cost_known.is_(True), c.cost_nusd), else_=0)).label("cost"),
            func.sum(case((c.cost_known.is_(True), 0), else_=1)).label("unpriced"),
            func.sum(case((and_(gateway, c.state.in_(FAILED)), 1), else_=0)).label("errors"),
        )
        .where(*conds)
        .group_by(c.trace_id)
    )


def _root_names(engine: Engine, org_id: str, ids: Iterable[str]) -> dict[str, str]:
    """Each trace's first parentless span's name (else its first span's)."""
    c = spans.c
    rank = (
        func.row_number()
        .over(
            partition_by=c.trace_id,
            order_by=(case((c.parent_span_id.is_(None), 0), else_=1), c.start_ns, c.span_id),
        )
        .label("rank")
    )
    inner = (
        select(c.trace_id, c.name, rank)
        .where(c.org_id == org_id, c.trace_id.in_(list(ids)))
        .subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(select(inner.c.trace_id, inner.c.name).where(inner.c.rank == 1))
        return {r.trace_id: r.name for r in rows}


def _first_records(engine: Engine, org_id: str, ids: list[str]) -> dict[str, str]:
    """For traces with no span: a name from each one's first record."""
    c = requests.c
    q = (
        select(c.trace_id, c.endpoint, c.model)
        .where(c.org_id == org_id, c.trace_id.in_(ids))
        .order_by(c.created_at, c.id)
    )
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for r in conn.execute(q):
            out.setdefault(r.trace_id, f"{operation(r.endpoint)} {r.model or ''}".strip())
    return out


def recent_traces(
    engine: Engine,
    org_id: str,
    limit: int = 50,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[dict[str, Any]]:
    """The latest traces first (by their first span or record in the window), with figures
    over what the window holds of each."""
    parts = union_all(
        _span_groups(org_id, since_ms, until_ms), _record_groups(org_id, since_ms, until_ms)
    ).subquery()
    p = parts.c
    start = func.min(p.start_ms)
    q = (
        select(
            p.trace_id,
            start.label("start_ms"),
            func.max(p.end_ms).label("end_ms"),
            func.sum(p.spans).label("spans"),
            func.sum(p.llm).label("llm"),
            func.sum(p.cost).label("cost"),
            func.sum(p.unpriced).label("unpriced"),
            func.sum(p.errors).label("errors"),
        )
        .group_by(p.trace_id)
        .order_by(start.desc(), p.trace_id.desc())
        .limit(max(1, min(limit, MAX_LIST)))
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    names = _root_names(engine, org_id, [r["trace_id"] for r in rows])
    nameless = [r["trace_id"] for r in rows if r["trace_id"] not in names]
    if nameless:
        names |= _first_records(engine, org_id, nameless)
    out = []
    for r in rows:
        llm, unpriced = int(r["llm"] or 0), int(r["unpriced"] or 0)
        out.append(
            {
                "trace_id": r["trace_id"],
                "root_name": names.get(r["trace_id"], ""),
                "start": iso_ms(int(r["start_ms"])),
                "start_ms": int(r["start_ms"]),
                "duration_ms": max(0, int(r["end_ms"]) - int(r["start_ms"])),
                "span_count": int(r["spans"] or 0),
                "llm_calls": llm,
                "cost_usd": usd(int(r["cost"] or 0)) if llm > unpriced else None,
                "unpriced": unpriced,
                "errors": int(r["errors"] or 0),
            }
        )
    return out
