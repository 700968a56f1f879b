"""Analytics API, the JSON twin of the Dashboard: summary, timeseries and breakdown.

Same query functions as the pages (``store.analytics``). ``since`` and ``until`` are ISO 8601
or epoch seconds/milliseconds (default: the last 24 hours); ``bucket`` is seconds or a
duration like ``5m``, ``1h``, ``1d`` (default: about 20-40 points). A timeseries with neither
``since`` nor ``until`` ends with its current bucket, as the Dashboard's charts do: buckets on
round boundaries, served from the hourly rollups. ``model``, ``provider``, ``upstream``,
``user_id``, ``session_id``, ``task`` (an Open WebUI background task such as
``title_generation``), ``prompt_name``, ``prompt_version`` (read from raw records: no rollup
has them) and ``user_group`` (a group's current members) restrict all three to
exact values (ANDed), as the rollups' dimensions do; any other parameter is a 400. Each is also
a ``dimension`` of the breakdown: by ``task``, the row with a null key is the chats; by
``user_group``, each group sums its current members (a user in two groups counts in both).
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.requests import parse_time
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import analytics
from heliograph.store.requests import iso_ms

DAY_MS = 86_400_000
MAX_POINTS = 10_000
AUTO_POINTS = 40  # 24 h -> hourly, 7 d -> 6-hourly, 30 d -> daily buckets
MAX_LIMIT = 1000
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, None: 1000}
FILTERS = analytics.DIMENSIONS
WINDOW = ("since", "until", *FILTERS)


def filters(request: Request) -> dict[str, str]:
    """The exact-value filters given (empty values are no filter)."""
    q = request.query_params
    found = {name: q[name] for name in FILTERS if q.get(name)}
    version = found.get("prompt_version", "0")
    if not (version.isascii() and version.isdigit() and len(version) < 10):
        raise ApiError(400, "prompt_version must be a version number", "invalid_parameter")
    return found


def window(request: Request) -> tuple[int, int]:
    q = request.query_params
    until = parse_time(q["until"], "until") if q.get("until") else int(time.time() * 1000)
    since = parse_time(q["since"], "since") if q.get("since") else until - DAY_MS
    if until <= since:
        raise ApiError(400, "until must be after since", "invalid_parameter")
    return since, until


def parse_bucket(value: str | None, since: int, until: int) -> int:
    if not value:
        return analytics.auto_bucket(until - since, AUTO_POINTS)
    match = _DURATION.match(value.strip())
    if not match:
        raise ApiError(
            400, "bucket must be seconds or a duration like 5m, 1h, 1d", "invalid_parameter"
        )
    bucket = int(float(match.group(1)) * _UNITS[match.group(2)])
    if bucket < 1000:
        raise ApiError(400, "bucket must be at least one second", "invalid_parameter")
    if (until - since) / bucket > MAX_POINTS:
        raise ApiError(400, f"at most {MAX_POINTS} buckets per query", "invalid_parameter")
    return bucket


async def summary(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, WINDOW)
    since, until = window(request)
    data = await run_in_threadpool(
        analytics.summary, request.app.state.engine, info.org_id, since, until, filters(request)
    )
    return JSONResponse({"since": iso_ms(since), "until": iso_ms(until), **data})


async def timeseries(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, (*WINDOW, "bucket"))
    since, until = window(request)
    bucket = parse_bucket(request.query_params.get("bucket"), since, until)
    if not request.query_params.get("since") and not request.query_params.get("until"):
        until = -(-until // bucket) * bucket  # the default window ends with its last bucket
        since = until - DAY_MS
    points: list[dict[str, Any]] = await run_in_threadpool(
        analytics.timeseries,
        request.app.state.engine,
        info.org_id,
        since,
        until,
        bucket,
        filters(request),
    )
    for point in points:
        point["start"] = iso_ms(point["start_ms"])
    return JSONResponse(
        {"since": iso_ms(since), "until": iso_ms(until), "bucket_ms": bucket, "data": points}
    )


async def breakdown(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, (*WINDOW, "dimension", "limit"))
    since, until = window(request)
    q = request.query_params
    dimension = q.get("dimension", "model")
    try:
        limit = int(q.get("limit", "50"))
    except ValueError as exc:
        raise ApiError(400, "limit must be an integer", "invalid_parameter") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"limit must be between 1 and {MAX_LIMIT}", "invalid_parameter")
    try:
        rows = await run_in_threadpool(
            analytics.breakdown,
            request.app.state.engine,
            info.org_id,
            dimension,
            since,
            until,
            limit,
            filters(request),
        )
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc
    for row in rows:
        row["first_seen"] = iso_ms(row["first_ms"])
        row["last_seen"] = iso_ms(row["last_ms"])
    return JSONResponse(
        {"since": iso_ms(since), "until": iso_ms(until), "dimension": dimension, "data": rows}
    )


routes = [
    Route("/api/v1/analytics/summary", summary, methods=["GET"]),
    Route("/api/v1/analytics/timeseries", timeseries, methods=["GET"]),
    Route("/api/v1/analytics/breakdown", breakdown, methods=["GET"]),
]
