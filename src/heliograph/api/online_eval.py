"""Online evaluation API: rules that score a sample of production traffic, and their status.

Admin keys write, read keys read, write keys do neither (as for prompts and datasets);
another organization's rule is answered as absent (404). A rule's filter is the Requests
page's URL parameters as an object (``{"model": "gpt-4o", "property.team": "red"}``), checked
by the same parser the Requests page uses, so a misspelt field is a 400 naming it rather than
a rule that silently scores everything.

The scores a rule stores land on the records (``scores`` in ``GET /api/v1/requests/<id>``,
with the evaluator's name); ``.../status`` says how many entries wait, were scored, or could
not be scored, and when the sampler last looked.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params, id_param
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.evals.online import RuleError, check_rule
from heliograph.store import online_eval as store
from heliograph.store.requests import iso_ms


def rule_api(row: dict[str, Any]) -> dict[str, Any]:
    last = row.get("last_run_at")
    return {
        "id": row["id"],
        "name": row["name"],
        "evaluator": row["evaluator"],
        "filter": row["filter"] or {},
        "sample_rate": row["sample_rate"],
        "enabled": row["enabled"],
        "created_at": iso_ms(row["created_at"]),
        "created_by": row["created_by"],
        "updated_at": iso_ms(row["updated_at"]),
        "last_run_at": None if last is None else iso_ms(last),
    }


def status_api(status: dict[str, Any]) -> dict[str, Any]:
    last = status["last_run_at"]
    return {
        "rule_id": status["rule_id"],
        "enabled": status["enabled"],
        "queued": status["queued"],
        "done": status["done"],
        "errors": status["errors"],
        "last_run_at": None if last is None else iso_ms(last),
        "read_to": iso_ms(status["read_to"]) if status["read_to"] else None,
        "recent_errors": [
            {
                "request_id": e["request_id"],
                "error": e["error"],
                "at": None if e["done_at"] is None else iso_ms(e["done_at"]),
            }
            for e in status["recent_errors"]
        ],
    }


def rule_id(request: Request) -> str:
    return id_param(request, "rule_id", missing)


def missing(value: str) -> ApiError:
    return ApiError(404, f"No online evaluation rule {value[:100]!r} here.", "not_found")


async def _body(request: Request, *, partial: bool) -> dict[str, Any]:
    doc = await read_json_object(request)
    try:
        return check_rule(doc, partial=partial)
    except RuleError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc


async def list_rules(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rows = await run_in_threadpool(store.list_rules, request.app.state.engine, info.org_id)
    return JSONResponse({"data": [rule_api(r) for r in rows]})


async def create_rule(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    rule = await _body(request, partial=False)
    try:
        row = await run_in_threadpool(
            lambda: store.create_rule(
                request.app.state.engine,
                info.org_id,
                name=rule["name"],
                evaluator=rule["evaluator"],
                filter_params=rule["filter"],
                sample_rate=rule["sample_rate"],
                enabled=rule["enabled"],
                created_by=f"key:{info.id}",
            )
        )
    except store.DuplicateName as exc:
        raise ApiError(409, f"A rule named {rule['name']!r} exists.", "conflict") from exc
    return JSONResponse(rule_api(row), 201)


async def get_rule(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rid = rule_id(request)
    row = await run_in_threadpool(store.get_rule, request.app.state.engine, info.org_id, rid)
    if row is None:
        raise missing(rid)
    return JSONResponse(rule_api(row))


async def update_rule(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    rid = rule_id(request)
    changes = await _body(request, partial=True)
    engine = request.app.state.engine
    try:
        row = await run_in_threadpool(store.update_rule, engine, info.org_id, rid, changes)
    except store.DuplicateName as exc:
        raise ApiError(409, f"A rule named {changes['name']!r} exists.", "conflict") from exc
    if row is None:
        raise missing(rid)
    return JSONResponse(rule_api(row))


async def delete_rule(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    rid = rule_id(request)
    engine = request.app.state.engine
    if not await run_in_threadpool(store.delete_rule, engine, info.org_id, rid):
        raise missing(rid)
    return Response(status_code=204)


async def rule_status(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rid = rule_id(request)
    found = await run_in_threadpool(store.rule_status, request.app.state.engine, info.org_id, rid)
    if found is None:
        raise missing(rid)
    return JSONResponse(status_api(found))


routes = [
    Route("/api/v1/online-evals", list_rules, methods=["GET"]),
    Route("/api/v1/online-evals", create_rule, methods=["POST"]),
    Route("/api/v1/online-evals/{rule_id}", get_rule, methods=["GET"]),
    Route("/api/v1/online-evals/{rule_id}", update_rule, methods=["PATCH"]),
    Route("/api/v1/online-evals/{rule_id}", delete_rule, methods=["DELETE"]),
    Route("/api/v1/online-evals/{rule_id}/status", rule_status, methods=["GET"]),
]
