"""Helicone's query API: ``POST /v1/request/query`` and ``POST /v1/request/query/count``.

A Helicone user's scripts keep working against Heliograph: same paths, same body
(``filter``, ``offset``, ``limit``, ``sort``; ``isCached`` and Helicone's other flags are
accepted and ignored) and the same ``{"data": ..., "error": null}`` envelope. Records are in
Heliograph's API shape (as ``GET /api/v1/requests``) plus ``feedback`` and ``scores``. The
same endpoints also live under ``/api/v1/requests/query`` next to the rest of our API.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.requests import parse_tree
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import query as query_store

MAX_BODY = 1 << 20
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_OFFSET = 10**9


async def read_json(request: Request, *, empty: Any = None) -> Any:
    """The JSON body, read with a size cap; ``empty`` stands in for an empty body if given."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, f"body is larger than {MAX_BODY} bytes", "body_too_large")
    if not body.strip() and empty is not None:
        return empty
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body must be JSON", "invalid_json") from exc


async def read_json_object(request: Request, *, empty: Any = None) -> dict[str, Any]:
    """The body as a JSON object, or the API's 400 (one spelling for every endpoint)."""
    doc = await read_json(request, empty=empty)
    if not isinstance(doc, dict):
        raise ApiError(400, "body must be a JSON object", "invalid_json")
    return doc


def _integer(doc: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = doc.get(name)
    if value is None:
        return default
    # Helicone's schema types these as doubles, so 10.0 is accepted; 10.5 is not.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}", "invalid_parameter")
    return value


def _sort(value: Any) -> tuple[str, bool]:
    if value is None or value == {}:
        return "created_at", False
    if not isinstance(value, dict) or len(value) != 1:
        raise ApiError(
            400, 'sort must be an object with one key, like {"created_at": "desc"}', "invalid_sort"
        )
    ((key, direction),) = value.items()
    if key not in query_store.SORTS:
        known = ", ".join(query_store.SORTS)
        raise ApiError(400, f"cannot sort by {key!r}; use one of {known}", "invalid_sort")
    if direction not in ("asc", "desc"):
        raise ApiError(400, 'sort direction must be "asc" or "desc"', "invalid_sort")
    return key, direction == "asc"


async def query(request: Request) -> Response:
    info = await require(request, "read")
    doc = await read_json_object(request, empty={})
    where = parse_tree(doc.get("filter", "all"))
    offset = _integer(doc, "offset", 0, 0, MAX_OFFSET)
    limit = _integer(doc, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    sort, ascending = _sort(doc.get("sort"))
    rows = await run_in_threadpool(
        lambda: query_store.query_requests(
            request.app.state.engine,
            info.org_id,
            where,
            offset=offset,
            limit=limit,
            sort=sort,
            ascending=ascending,
        )
    )
    return JSONResponse({"data": rows, "error": None})


async def count(request: Request) -> Response:
    info = await require(request, "read")
    doc = await read_json_object(request, empty={})
    where = parse_tree(doc.get("filter", "all"))
    total = await run_in_threadpool(
        query_store.count_requests, request.app.state.engine, info.org_id, where
    )
    return JSONResponse({"data": total, "error": None})


routes = [
    Route("/v1/request/query", query, methods=["POST"]),
    Route("/v1/request/query/count", count, methods=["POST"]),
    Route("/api/v1/requests/query", query, methods=["POST"]),
    Route("/api/v1/requests/query/count", count, methods=["POST"]),
]
