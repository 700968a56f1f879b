"""Helicone-style record queries: a filter tree, one sort key, offset and limit; and counts.

Offset pagination is what Helicone's API offers, so it is kept for drop-in clients; the
``GET /api/v1/requests`` cursor API and export use keysets instead. Sort keys are numeric
columns only, with missing values last in both directions, so SQLite and PostgreSQL return
the same order (text collations differ between the two). ``NULLS LAST`` is only spelled for
columns that can be missing: on ``created_at`` (the default) the plain order lets an index
that ends in ``created_at`` deliver the page without sorting every match.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, case, func, select

from heliograph.store import filters
from heliograph.store.feedback import annotate
from heliograph.store.requests import LIST_COLUMNS, to_api
from heliograph.store.schema import requests

SORTS: dict[str, Any] = {
    "created_at": requests.c.created_at,
    "request_created_at": requests.c.created_at,
    "latency": requests.c.latency_ms,
    "time_to_first_token": requests.c.ttft_ms,
    "status": requests.c.status,
    "prompt_tokens": requests.c.prompt_tokens,
    "completion_tokens": requests.c.completion_tokens,
    "total_tokens": requests.c.total_tokens,
    "cost": case((requests.c.cost_known.is_(True), requests.c.cost_nusd), else_=None),
}

NOT_NULL = frozenset(
    name for name, expr in SORTS.items() if getattr(expr, "nullable", True) is False
)


def query_requests(
    engine: Engine,
    org_id: str,
    where: filters.Filter,
    *,
    offset: int = 0,
    limit: int = 100,
    sort: str = "created_at",
    ascending: bool = False,
) -> list[dict[str, Any]]:
    """One page of API-shaped records with their feedback and scores."""
    query = page_query(org_id, where, offset, limit, sort, ascending)
    with engine.connect() as conn:
        rows = [to_api(dict(r._mapping)) for r in conn.execute(query)]
        annotate(conn, org_id, rows)
    return rows


def page_query(
    org_id: str, where: filters.Filter, offset: int, limit: int, sort: str, ascending: bool
) -> Select[Any]:
    """The page's SELECT, ordered by ``sort`` with missing values last, then by id."""
    expr = SORTS[sort]
    direction = expr.asc() if ascending else expr.desc()
    if sort not in NOT_NULL:
        direction = direction.nulls_last()
    tiebreak = requests.c.id.asc() if ascending else requests.c.id.desc()
    return (
        select(*LIST_COLUMNS)
        .where(filters.condition(org_id, where))
        .order_by(direction, tiebreak)
        .offset(offset)
        .limit(limit)
    )


def count_requests(engine: Engine, org_id: str, where: filters.Filter) -> int:
    query = select(func.count()).select_from(requests).where(filters.condition(org_id, where))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
