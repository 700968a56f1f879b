"""Queries on costs: breakdowns by a dimension, unpriced models, and the recompute pass."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, and_, bindparam, case, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from heliograph.store.requests import iso_ms
from heliograph.store.schema import request_properties, requests

DAY_MS = 86_400_000
GROUPS = (
    *("provider", "model", "user_id", "session_id", "key_id", "day", "upstream"),
    *("prompt_name", "prompt_version"),
)


def _group_column(group_by: str) -> ColumnElement[Any]:
    if group_by == "day":
        return (requests.c.created_at // DAY_MS).label("grp")
    if group_by in GROUPS:
        return requests.c[group_by].label("grp")
    raise ValueError(f"group_by must be one of {', '.join(GROUPS)} or property.<name>")


def cost_breakdown(
    engine: Engine,
    org_id: str,
    group_by: str,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[dict[str, Any]]:
    """Requests, tokens and cost per group, LLM calls only, biggest cost first.

    ``unpriced_requests`` counts requests whose cost is unknown, so a total is never
    silently an undercount.
    """
    conds = [requests.c.org_id == org_id, requests.c.kind == "llm"]
    if since_ms is not None:
        conds.append(requests.c.created_at >= since_ms)
    if until_ms is not None:
        conds.append(requests.c.created_at < until_ms)
    source: Any = requests
    if group_by.startswith("property."):
        name = group_by[len("property.") :]
        source = requests.join(
            request_properties,
            and_(
                request_properties.c.request_id == requests.c.id,
                request_properties.c.name == name,
            ),
        )
        group: ColumnElement[Any] = request_properties.c.value.label("grp")
    else:
        group = _group_column(group_by)
    known = requests.c.cost_known.is_(True)
    query = (
        select(
            group,
            func.count().label("requests"),
            func.sum(case((known, requests.c.cost_nusd), else_=0)).label("cost_nusd"),
            func.sum(case((known, 0), else_=1)).label("unpriced_requests"),
            func.coalesce(func.sum(requests.c.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(requests.c.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(requests.c.cached_tokens), 0).label("cached_tokens"),
        )
        .select_from(source)
        .where(*conds)
        .group_by(group)
        .order_by(func.sum(case((known, requests.c.cost_nusd), else_=0)).desc(), group)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        key = row.grp
        if group_by == "day" and key is not None:
            key = iso_ms(int(key) * DAY_MS)[:10]
        out.append(
            {
                "group": key,
                "requests": int(row.requests),
                "cost_usd": int(row.cost_nusd or 0) / 1e9,
                "unpriced_requests": int(row.unpriced_requests or 0),
                "prompt_tokens": int(row.prompt_tokens),
                "completion_tokens": int(row.completion_tokens),
                "cached_tokens": int(row.cached_tokens),
            }
        )
    return out


def unpriced_models(
    engine: Engine, org_id: str, since_ms: int | None = None
) -> list[dict[str, Any]]:
    """Models that have LLM traffic but no price, with how much traffic."""
    conds = [
        requests.c.org_id == org_id,
        requests.c.kind == "llm",
        requests.c.cost_known.is_(False),
        requests.c.status < 400,
    ]
    if since_ms is not None:
        conds.append(requests.c.created_at >= since_ms)
    model = func.coalesce(requests.c.response_model, requests.c.model)
    query = (
        select(
            requests.c.provider,
            model.label("model"),
            func.count().label("requests"),
            func.coalesce(func.sum(requests.c.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(requests.c.completion_tokens), 0).label("completion_tokens"),
            func.max(requests.c.created_at).label("last_seen"),
        )
        .where(*conds)
        .group_by(requests.c.provider, model)
        .order_by(func.count().desc())
    )
    with engine.connect() as conn:
        return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(query)]


RECOMPUTE_COLUMNS = (
    requests.c.id,
    requests.c.created_at,
    requests.c.provider,
    requests.c.upstream,
    requests.c.model,
    requests.c.response_model,
    requests.c.prompt_tokens,
    requests.c.completion_tokens,
    requests.c.cached_tokens,
    requests.c.cache_write_tokens,
    requests.c.reasoning_tokens,
    requests.c.latency_ms,
    requests.c.ttft_ms,
    requests.c.kind,
    requests.c.cache_hit,
    requests.c.model_override,
    requests.c.served_by,
)


def iter_for_recompute(
    engine: Engine, since_ms: int | None, batch: int = 5000
) -> Iterator[list[dict[str, Any]]]:
    """Rows needed to price requests again, in id order, a batch at a time."""
    last_id = ""
    while True:
        conds = [requests.c.id > last_id, requests.c.kind == "llm"]
        if since_ms is not None:
            conds.append(requests.c.created_at >= since_ms)
        query = select(*RECOMPUTE_COLUMNS).where(*conds).order_by(requests.c.id).limit(batch)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if not rows:
            return
        yield rows
        last_id = rows[-1]["id"]


def update_costs(engine: Engine, updates: Sequence[dict[str, Any]]) -> None:
    """Write recomputed cost columns (each dict has ``id`` and the cost_* columns)."""
    if not updates:
        return
    stmt = (
        update(requests)
        .where(requests.c.id == bindparam("rid"))
        .values(
            cost_nusd=bindparam("cost_nusd"),
            cost_known=bindparam("cost_known"),
            cost_input_nusd=bindparam("cost_input_nusd"),
            cost_output_nusd=bindparam("cost_output_nusd"),
            cost_cache_read_nusd=bindparam("cost_cache_read_nusd"),
            cost_cache_write_nusd=bindparam("cost_cache_write_nusd"),
            cost_source=bindparam("cost_source"),
            price_ref=bindparam("price_ref"),
            cost_saved_nusd=bindparam("cost_saved_nusd"),
        )
    )
    with engine.begin() as conn:
        conn.execute(
            stmt,
            [
                {
                    "rid": u["id"],
                    "cost_saved_nusd": None,
                    **{k: v for k, v in u.items() if k != "id"},
                }
                for u in updates
            ],
        )
