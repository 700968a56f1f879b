"""Read API for traces: ``GET /api/v1/traces`` (the latest) and ``GET /api/v1/traces/{id}``
(one trace's span tree). The dashboard's trace pages read the same ``store.traces`` queries."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.requests import parse_time
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import trace_list, traces

LIST_PARAMS = ("limit", "since", "until")


async def list_traces(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, LIST_PARAMS)
    q = request.query_params
    try:
        limit = int(q.get("limit", "50"))
    except ValueError as exc:
        raise ApiError(400, "limit must be an integer", "invalid_parameter") from exc
    if not 1 <= limit <= trace_list.MAX_LIST:
        raise ApiError(
            400, f"limit must be between 1 and {trace_list.MAX_LIST}", "invalid_parameter"
        )
    since = parse_time(q["since"], "since") if q.get("since") else None
    until = parse_time(q["until"], "until") if q.get("until") else None
    rows = await run_in_threadpool(
        trace_list.recent_traces, request.app.state.engine, info.org_id, limit, since, until
    )
    return JSONResponse({"data": rows})


async def get_trace(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    trace_id = request.path_params["trace_id"]
    if not traces.valid_trace_id(trace_id):
        raise ApiError(
            400, "a trace id is 32 lower-case hex digits, not all zero", "invalid_parameter"
        )
    tree = await run_in_threadpool(
        traces.trace_tree, request.app.state.engine, info.org_id, trace_id
    )
    if tree is None:
        raise ApiError(404, f"No trace {trace_id!r} in this organization.", "not_found")
    return JSONResponse(tree.to_api())


routes = [
    Route("/api/v1/traces", list_traces, methods=["GET"]),
    Route("/api/v1/traces/{trace_id}", get_trace, methods=["GET"]),
]
