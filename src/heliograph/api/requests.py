"""Read API for request records: ``GET /api/v1/requests`` and ``GET /api/v1/requests/{id}``."""

from __future__ import annotations

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import filters
from heliograph.store import requests as request_store

MAX_LIMIT = 1000
FILTER_FIELDS = ("model", "provider", "user_id", "session_id", "state", "kind")
# What parse_filter reads (plus property.<name>); list and export add their own.
FILTER_PARAMS = (*FILTER_FIELDS, "status", "since", "until", "filter")
LIST_PARAMS = (*FILTER_PARAMS, "limit", "cursor")


def parse_time(value: str, name: str) -> int:
    """Milliseconds since the epoch from ISO 8601 or a number (seconds or milliseconds)."""
    try:
        return filters.to_epoch_ms(value, name)
    except filters.FilterError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc


def parse_filter(request: Request) -> request_store.RequestFilter:
    q = request.query_params
    f = request_store.RequestFilter()
    for name in FILTER_FIELDS:
        if q.get(name):
            setattr(f, name, q[name])
    if q.get("status"):
        try:
            f.status = int(q["status"])
        except ValueError as exc:
            raise ApiError(400, "status must be an integer", "invalid_parameter") from exc
        if not 0 <= f.status < 1000:
            raise ApiError(400, "status must be between 0 and 999", "invalid_parameter")
    if q.get("since"):
        f.since_ms = parse_time(q["since"], "since")
    if q.get("until"):
        f.until_ms = parse_time(q["until"], "until")
    for key, value in q.multi_items():
        if key.startswith("property.") and len(key) > len("property."):
            f.properties[key[len("property.") :].lower()] = value
    if q.get("filter"):
        f.where = parse_tree(q["filter"])
    return f


def parse_tree(raw: str | bytes | object) -> filters.Filter:
    """A Helicone filter tree from JSON text (or already-decoded JSON); 400 if invalid."""
    if isinstance(raw, str) and raw.strip() == "all":
        return filters.ALL
    if isinstance(raw, str | bytes):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "filter must be JSON", "invalid_filter") from exc
    try:
        return filters.parse(raw)
    except filters.FilterError as exc:
        raise ApiError(400, str(exc), "invalid_filter") from exc


async def list_requests(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, LIST_PARAMS, properties=True)
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
