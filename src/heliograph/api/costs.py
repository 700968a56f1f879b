"""Cost API: breakdowns by provider, model, user, session, property, key or day; unpriced models."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.requests import parse_time
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import costs as cost_store
from heliograph.store.requests import iso_ms


async def breakdown(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ("group_by", "since", "until"))
    q = request.query_params
    group_by = q.get("group_by", "model")
    since = parse_time(q["since"], "since") if q.get("since") else None
    until = parse_time(q["until"], "until") if q.get("until") else None
    try:
        rows = await run_in_threadpool(
            cost_store.cost_breakdown, request.app.state.engine, info.org_id, group_by, since, until
        )
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc
    total = sum(r["cost_usd"] for r in rows)
    unpriced = sum(r["unpriced_requests"] for r in rows)
    return JSONResponse(
        {
            "group_by": group_by,
            "data": rows,
            "total_cost_usd": round(total, 9),
            "unpriced_requests": unpriced,
        }
    )


async def unpriced(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ("since",))
    q = request.query_params
    since = parse_time(q["since"], "since") if q.get("since") else None
    rows = await run_in_threadpool(
        cost_store.unpriced_models, request.app.state.engine, info.org_id, since
    )
    for row in rows:
        row["last_seen"] = iso_ms(row["last_seen"])
    return JSONResponse({"data": rows})


routes = [
    Route("/api/v1/costs", breakdown, methods=["GET"]),
    Route("/api/v1/costs/unpriced-models", unpriced, methods=["GET"]),
]
