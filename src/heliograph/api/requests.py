"""Read API for request records: ``GET /api/v1/requests`` and ``GET /api/v1/requests/{id}``.

Filters are the URL spellings of ``store.fields`` (read by ``store.filter_params``, as the
dashboard and the CLI read theirs), plus ``filter=`` for a Helicone tree as JSON.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import filter_params, filters, times
from heliograph.store import requests as request_store
from heliograph.store.selection import RequestFilter

MAX_LIMIT = 1000
LIST_PARAMS = ("limit", "cursor")


def parse_time(value: str, name: str) -> int:
    """Epoch milliseconds from any form ``store.times`` reads; 400 with its message if not."""
    try:
        return times.parse_time(value, name)
    except times.TimeError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc


def parse_filter(request: Request) -> RequestFilter:
    """The filter parameters of ``request`` as one tree; 400 naming the first bad one."""
    items: list[filters.Filter] = []
    for name, value in request.query_params.multi_items():
        if not value or not filter_params.is_filter_param(name):
            continue
        try:
            items.append(filter_params.parse_one(name, value))
        except filters.FilterError as exc:
            code = "invalid_filter" if name == filter_params.TREE else "invalid_parameter"
            raise ApiError(400, str(exc), code) from exc
    return RequestFilter(where=filters.all_of(*items))


def parse_tree(raw: object) -> filters.Filter:
    """A Helicone filter tree (decoded JSON, or JSON text); 400 if invalid."""
    try:
        return filter_params.parse_tree(raw) if isinstance(raw, str) else filters.parse(raw)
    except filters.FilterError as exc:
        raise ApiError(400, str(exc), "invalid_filter") from exc


async def list_requests(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, LIST_PARAMS, filters=True)
    f = parse_filter(request)
    try:
        limit = int(request.query_params.get("limit", "50"))
    except ValueError as exc:
        raise ApiError(400, "limit must be an integer", "invalid_parameter") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"limit must be between 1 and {MAX_LIMIT}", "invalid_parameter")
    cursor = request.query_params.get("cursor") or None
    try:
        rows, next_cursor = await run_in_threadpool(
            request_store.list_requests, request.app.state.engine, info.org_id, f, limit, cursor
        )
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_cursor") from exc
    return JSONResponse({"data": rows, "next_cursor": next_cursor})


async def get_request(request: Request) -> Response:
    info = await require(request, "read")
    rid = request.path_params["request_id"]
    row = await run_in_threadpool(
        request_store.get_request, request.app.state.engine, info.org_id, rid
    )
    if row is None:
        raise ApiError(404, f"No request {rid!r} in this organization.", "not_found")
    return JSONResponse(row)


routes = [
    Route("/api/v1/requests", list_requests, methods=["GET"]),
    Route("/api/v1/requests/{request_id}", get_request, methods=["GET"]),
]
