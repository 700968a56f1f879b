"""Budgets API: create, list (with usage), change and delete budgets.

Admin keys write; read keys read. A budget of another organization is answered as absent.
A budget defined in ``config.toml`` is listed like any other but changed only there: the
next start would undo a change made here, so the API refuses it and says where to make it.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.budgets.rules import (
    Budget,
    BudgetError,
    check_budget,
    config_owned,
    duplicate_name,
    unknown_key,
)
from heliograph.budgets.status import standing
from heliograph.store import budgets as budget_store
from heliograph.store import keys as key_store


async def _checked(request: Request, org_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    settings = request.app.state.settings
    try:
        fields = check_budget(doc, settings.budget_timezone)
    except BudgetError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc
    key_id = fields["scope"].get("key_id")
    if key_id is not None:
        engine = request.app.state.engine
        keys = await run_in_threadpool(key_store.list_keys, engine, org_id)
        if not any(k["id"] == key_id for k in keys):
            raise ApiError(400, unknown_key(key_id), "invalid_parameter")
    return fields


async def _reload(request: Request) -> None:
    """This worker enforces the change at once; the others on their next refresh."""
    await run_in_threadpool(request.app.state.budgets.load)


async def _one(request: Request, org_id: str) -> Budget:
    row = await run_in_threadpool(
        budget_store.get_budget, request.app.state.engine, org_id, request.path_params["budget_id"]
    )
    if row is None:
        raise ApiError(404, "No such budget in this organization.", "not_found")
    return Budget.from_row(row)


async def list_budgets(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rows = await run_in_threadpool(budget_store.list_budgets, request.app.state.engine, info.org_id)
    ledger = request.app.state.ledger
    data = [await standing(Budget.from_row(r), ledger) for r in rows]
    return JSONResponse({"data": data})


async def get_budget(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    budget = await _one(request, info.org_id)
    return JSONResponse(await standing(budget, request.app.state.ledger))


async def create_budget(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    fields = await _checked(request, info.org_id, await read_json_object(request))
    try:
        row = await run_in_threadpool(
            budget_store.create_budget,
            request.app.state.engine,
            info.org_id,
            fields,
            f"key:{info.id}",
        )
    except budget_store.DuplicateBudget as exc:
        raise ApiError(409, duplicate_name(fields["name"]), "conflict") from exc
    await _reload(request)
    budget = Budget.from_row(row)
    return JSONResponse(await standing(budget, request.app.state.ledger), status_code=201)


async def replace_budget(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    budget = await _one(request, info.org_id)
    _not_config(budget)
    fields = await _checked(request, info.org_id, await read_json_object(request))
    try:
        row = await run_in_threadpool(
            budget_store.update_budget, request.app.state.engine, info.org_id, budget.id, fields
        )
    except budget_store.DuplicateBudget as exc:
        raise ApiError(409, duplicate_name(fields["name"]), "conflict") from exc
    if row is None:
        raise ApiError(404, "No such budget in this organization.", "not_found")
    await _reload(request)
    return JSONResponse(await standing(Budget.from_row(row), request.app.state.ledger))


async def delete_budget(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    budget = await _one(request, info.org_id)
    _not_config(budget)
    await run_in_threadpool(
        budget_store.delete_budget, request.app.state.engine, info.org_id, budget.id
    )
    await _reload(request)
    return Response(status_code=204)


def _not_config(budget: Budget) -> None:
    if budget.source == "config":
        raise ApiError(409, config_owned(budget.name), "defined_in_config")


routes = [
    Route("/api/v1/budgets", list_budgets, methods=["GET"]),
    Route("/api/v1/budgets", create_budget, methods=["POST"]),
    Route("/api/v1/budgets/{budget_id}", get_budget, methods=["GET"]),
    Route("/api/v1/budgets/{budget_id}", replace_budget, methods=["PUT"]),
    Route("/api/v1/budgets/{budget_id}", delete_budget, methods=["DELETE"]),
]
