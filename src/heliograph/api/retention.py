"""Retention API: the caller's organization's policy (read) and its override (admin).

``PUT`` replaces the whole override: each of ``bodies_days``, ``records_days`` and
``rollups_days`` is a number of days (1 to 36500), 0 for "never, whatever the server
default", or null (or left out) for "the server default". The job process applies it on its
next pass.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.retention.policy import PolicyError, check_override
from heliograph.retention.view import policy_view
from heliograph.store import retention as retention_store


async def get_retention(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    engine = request.app.state.engine
    override = await run_in_threadpool(retention_store.get_override, engine, info.org_id)
    return JSONResponse(policy_view(request.app.state.settings, override))


async def put_retention(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    settings = request.app.state.settings
    try:
        days = check_override(settings, await read_json_object(request))
    except PolicyError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc
    row = await run_in_threadpool(
        retention_store.set_override,
        request.app.state.engine,
        info.org_id,
        days,
        f"key:{info.id}",
    )
    return JSONResponse(policy_view(settings, row))


routes = [
    Route("/api/v1/retention", get_retention, methods=["GET"]),
    Route("/api/v1/retention", put_retention, methods=["PUT"]),
]
