"""Saved evaluators API: ``GET/POST /api/v1/evaluators``, ``GET/PUT/DELETE .../<name>``.

A body is an evaluator spec (``evals.specs``: ``name``, ``kind``, ``config``,
``description``), checked and normalised before it is stored, so what is read back is
complete. Admin keys write, read keys read; names are per organization.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.datasets import by
from heliograph.api.params import check_params
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.evals.specs import NAME, SpecError, parse_spec
from heliograph.store import evaluators as store
from heliograph.store.requests import iso_ms


def missing(name: str) -> ApiError:
    return ApiError(404, f"No evaluator {name[:100]!r} in this organization.", "not_found")


def evaluator_api(row: dict[str, Any]) -> dict[str, Any]:
    spec = row["spec"]
    return {
        "name": row["name"],
        "kind": spec["kind"],
        "description": spec.get("description", ""),
        "config": spec.get("config", {}),
        "created_at": iso_ms(row["created_at"]),
        "created_by": row["created_by"],
        "updated_at": iso_ms(row["updated_at"]),
    }


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not NAME.fullmatch(name):
        raise missing(name)
    return name


def _spec(doc: dict[str, Any]) -> dict[str, Any]:
    try:
        return parse_spec(doc).to_dict()
    except SpecError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc


async def create_evaluator(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    spec = _spec(await read_json_object(request))
    try:
        row = await run_in_threadpool(
            store.create_evaluator,
            request.app.state.engine,
            info.org_id,
            spec["name"],
            spec,
            by(info),
        )
    except store.DuplicateName as exc:
        message = f"An evaluator named {spec['name']!r} already exists."
        raise ApiError(409, message, "conflict") from exc
    return JSONResponse(evaluator_api(row), 201)


async def list_evaluators(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rows = await run_in_threadpool(store.list_evaluators, request.app.state.engine, info.org_id)
    return JSONResponse({"data": [evaluator_api(r) for r in rows]})


async def get_evaluator(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    name = _name(request)
    row = await run_in_threadpool(store.get_evaluator, request.app.state.engine, info.org_id, name)
    if row is None:
        raise missing(name)
    return JSONResponse(evaluator_api(row))


async def put_evaluator(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = _name(request)
    doc = await read_json_object(request)
    doc.setdefault("name", name)
    if doc["name"] != name:
        raise ApiError(
            400,
            "the name in the body must be the path's (names do not change)",
            "invalid_parameter",
        )
    spec = _spec(doc)
    row = await run_in_threadpool(
        store.update_evaluator, request.app.state.engine, info.org_id, name, spec
    )
    if row is None:
        raise missing(name)
    return JSONResponse(evaluator_api(row))


async def delete_evaluator(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = _name(request)
    engine = request.app.state.engine
    if not await run_in_threadpool(store.delete_evaluator, engine, info.org_id, name):
        raise missing(name)
    return Response(status_code=204)


routes = [
    Route("/api/v1/evaluators", create_evaluator, methods=["POST"]),
    Route("/api/v1/evaluators", list_evaluators, methods=["GET"]),
    Route("/api/v1/evaluators/{name}", get_evaluator, methods=["GET"]),
    Route("/api/v1/evaluators/{name}", put_evaluator, methods=["PUT"]),
    Route("/api/v1/evaluators/{name}", delete_evaluator, methods=["DELETE"]),
]
