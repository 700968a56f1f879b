"""Record webhooks API: endpoints (admin keys write, read keys read) and their delivery log.

The signing secret is in the answer to the POST that created the endpoint (generated unless
given) and never again: every other answer has ``secret_hint`` instead. Endpoints from
config.toml (``source: "config"``) are listed but answer 409 to PATCH and DELETE. Another
organization's endpoint is answered as absent (404).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.alerts.webhook_specs import EndpointError, check_endpoint, mask
from heliograph.api.auth import require
from heliograph.api.params import check_params, id_param
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.store import webhook_queue as queue
from heliograph.store import webhooks as store
from heliograph.store.requests import iso_ms

STATUSES = ("pending", "delivered", "failed")


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


def endpoint_api(row: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """An endpoint as the API shows it; ``secret`` is the stored one, only for the hint."""
    return {
        "id": row["id"],
        "name": row["name"],
        "url": row["url"],
        "filter": row["filter"] or {},
        "enabled": row["enabled"],
        "include_bodies": row["include_bodies"],
        "source": row["source"],
        "secret_hint": mask(secret) if secret else None,
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "last_error": row["last_error"],
        "last_error_at": _iso(row["last_error_at"]),
        "last_success_at": _iso(row["last_success_at"]),
    }


def delivery_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "request_id": row["request_id"],
        "event": row["event"],
        "status": row["status"],
        "attempts": row["attempts"],
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "next_attempt_at": _iso(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "delivered_at": _iso(row["delivered_at"]),
    }


def endpoint_id(request: Request) -> str:
    return id_param(request, "endpoint_id", missing)


def missing(value: str) -> ApiError:
    return ApiError(404, f"No webhook endpoint {value[:100]!r} here.", "not_found")


def from_config(value: str) -> ApiError:
    return ApiError(
        409, f"Webhook endpoint {value!r} is kept in config.toml; change it there.", "conflict"
    )


async def _body(request: Request, *, partial: bool) -> dict[str, Any]:
    doc = await read_json_object(request)
    try:
        return check_endpoint(doc, partial=partial)
    except EndpointError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc


async def _one(request: Request, org_id: str, eid: str) -> dict[str, Any]:
    engine = request.app.state.engine
    row = await run_in_threadpool(store.get_endpoint, engine, org_id, eid, with_secret=True)
    if row is None:
        raise missing(eid)
    return row


async def list_endpoints(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    engine = request.app.state.engine
    rows = await run_in_threadpool(
        lambda: store.list_endpoints(engine, info.org_id, with_secret=True)
    )
    return JSONResponse({"data": [endpoint_api(r, r["secret"]) for r in rows]})


async def create_endpoint(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    spec = await _body(request, partial=False)
    engine = request.app.state.engine
    try:
        row = await run_in_threadpool(store.create_endpoint, engine, info.org_id, spec)
    except store.DuplicateName as exc:
        raise ApiError(409, f"A webhook named {spec['name']!r} exists.", "conflict") from exc
    shown = endpoint_api(row, spec["secret"])
    shown["secret"] = spec["secret"]  # this once
    return JSONResponse(shown, 201)


async def get_endpoint(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    row = await _one(request, info.org_id, endpoint_id(request))
    return JSONResponse(endpoint_api(row, row["secret"]))


async def update_endpoint(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    eid = endpoint_id(request)
    changes = await _body(request, partial=True)
    engine = request.app.state.engine
    try:
        row = await run_in_threadpool(store.update_endpoint, engine, info.org_id, eid, changes)
    except store.DuplicateName as exc:
        raise ApiError(409, f"A webhook named {changes['name']!r} exists.", "conflict") from exc
    except store.FromConfig as exc:
        raise from_config(eid) from exc
    if row is None:
        raise missing(eid)
    full = await _one(request, info.org_id, eid)
    return JSONResponse(endpoint_api(full, full["secret"]))


async def delete_endpoint(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    eid = endpoint_id(request)
    try:
        gone = await run_in_threadpool(
            store.delete_endpoint, request.app.state.engine, info.org_id, eid
        )
    except store.FromConfig as exc:
        raise from_config(eid) from exc
    if not gone:
        raise missing(eid)
    return Response(status_code=204)


async def list_deliveries(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ("limit", "status"))
    eid = endpoint_id(request)
    await _one(request, info.org_id, eid)
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"status: must be one of {', '.join(STATUSES)}", "invalid_parameter")
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= queue.LOG_LIMIT:
        raise ApiError(
            400, f"limit: must be a whole number from 1 to {queue.LOG_LIMIT}", "invalid_parameter"
        )
    rows = await run_in_threadpool(
        queue.deliveries, request.app.state.engine, info.org_id, eid, int(raw), status
    )
    return JSONResponse({"data": [delivery_api(r) for r in rows]})


async def test_endpoint(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    eid = endpoint_id(request)
    await _one(request, info.org_id, eid)
    delivery = await run_in_threadpool(
        queue.enqueue_test, request.app.state.engine, info.org_id, eid
    )
    return JSONResponse({"delivery_id": delivery, "event": queue.TEST_EVENT}, 202)


routes = [
    Route("/api/v1/webhooks", list_endpoints, methods=["GET"]),
    Route("/api/v1/webhooks", create_endpoint, methods=["POST"]),
    Route("/api/v1/webhooks/{endpoint_id}", get_endpoint, methods=["GET"]),
    Route("/api/v1/webhooks/{endpoint_id}", update_endpoint, methods=["PATCH"]),
    Route("/api/v1/webhooks/{endpoint_id}", delete_endpoint, methods=["DELETE"]),
    Route("/api/v1/webhooks/{endpoint_id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/v1/webhooks/{endpoint_id}/test", test_endpoint, methods=["POST"]),
]
