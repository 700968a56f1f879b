"""Datasets API: datasets and their items (adding them from requests or files is
``dataset_imports``).

Admin keys write, read keys read; write keys (which applications hold to send traffic) do
neither, as for prompts. Another organization's dataset is answered as absent (404).

Items never change: ``PUT .../items/<id>`` archives the item and answers the new one it
made, ``DELETE`` archives it. An archived item stays readable at its id (with
``archived_at`` and ``replaced_by``), so an experiment that pinned it still finds it.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.prompts import DESCRIPTION_RULE, NAME, description_problem, read_description
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.auth.keys import KeyInfo
from heliograph.evals.dataset_items import Item, ItemError, check_item
from heliograph.store import datasets as dataset_store
from heliograph.store.requests import iso_ms

ITEM_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
MAX_ITEMS_PER_POST = 1000
DEFAULT_PAGE = 100
MAX_PAGE = 1000
RESERVED = ("add-matching", "add-requests")  # dashboard paths under /datasets/
NAME_RULE = (
    "name must be 1 to 100 characters: lowercase letters, digits, '-' and '_', "
    "starting with a letter or digit (and not add-matching or add-requests)"
)


def name_problem(name: object) -> bool:
    return not isinstance(name, str) or not NAME.fullmatch(name) or name in RESERVED


def by(info: KeyInfo) -> str:
    return f"key:{info.id}"


def missing(name: str) -> ApiError:
    return ApiError(404, f"No dataset {name!r} in this organization.", "not_found")


def dataset_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not NAME.fullmatch(name):  # never stored, so never found
        raise missing(name)
    return name


def item_id(request: Request) -> str:
    value: str = request.path_params["item_id"]
    if not ITEM_ID.fullmatch(value):
        raise ApiError(404, f"No item {value[:100]!r} in this dataset.", "not_found")
    return value


def dataset_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "description": row["description"],
        "item_count": row.get("item_count", 0),
        "created_at": iso_ms(row["created_at"]),
        "created_by": row["created_by"],
        "updated_at": iso_ms(row["updated_at"]),
    }


def item_api(row: dict[str, Any]) -> dict[str, Any]:
    archived = row.get("archived_at")
    return {
        "id": row["id"],
        "inputs": row["inputs"],
        "expected": row["expected"],
        "metadata": row["metadata"] or {},
        "source_request_id": row["source_request_id"],
        "content_hash": row["content_hash"],
        "created_at": iso_ms(row["created_at"]),
        "created_by": row["created_by"],
        "archived_at": None if archived is None else iso_ms(archived),
        "replaced_by": row.get("replaced_by"),
    }


async def create_dataset(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    doc = await read_json_object(request)
    name, description = doc.get("name"), doc.get("description", "")
    if not isinstance(name, str) or name_problem(name):
        raise ApiError(400, NAME_RULE, "invalid_parameter")
    if description_problem(description):
        raise ApiError(400, DESCRIPTION_RULE, "invalid_parameter")
    if set(doc) - {"name", "description"}:
        raise ApiError(400, "body may hold only name and description", "invalid_parameter")
    try:
        row = await run_in_threadpool(
            dataset_store.create_dataset,
            request.app.state.engine,
            info.org_id,
            name,
            description,
            by(info),
        )
    except dataset_store.DuplicateName as exc:
        raise ApiError(409, f"A dataset named {name!r} already exists.", "conflict") from exc
    return JSONResponse(dataset_api(row), 201)


async def list_datasets(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    engine = request.app.state.engine
    rows = await run_in_threadpool(dataset_store.list_datasets, engine, info.org_id)
    return JSONResponse({"data": [dataset_api(r) for r in rows]})


async def get_dataset(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    name = dataset_name(request)
    row = await run_in_threadpool(
        dataset_store.get_dataset, request.app.state.engine, info.org_id, name
    )
    if row is None:
        raise missing(name)
    return JSONResponse(dataset_api(row))


async def update_dataset(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = dataset_name(request)
    description = await read_description(request)
    engine = request.app.state.engine
    done = await run_in_threadpool(
        dataset_store.set_description, engine, info.org_id, name, description
    )
    row = await run_in_threadpool(dataset_store.get_dataset, engine, info.org_id, name)
    if not done or row is None:
        raise missing(name)
    return JSONResponse(dataset_api(row))


async def delete_dataset(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = dataset_name(request)
    engine = request.app.state.engine
    if not await run_in_threadpool(dataset_store.delete_dataset, engine, info.org_id, name):
        raise missing(name)
    return Response(status_code=204)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_PAGE))
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ApiError(400, f"limit must be between 1 and {MAX_PAGE}", "invalid_parameter")
    return int(raw)


async def list_items(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ("limit", "cursor", "archived"))
    name = dataset_name(request)
    limit = _limit(request)
    archived = request.query_params.get("archived", "false")
    if archived not in ("true", "false"):
        raise ApiError(400, "archived must be true or false", "invalid_parameter")
    engine = request.app.state.engine
    if await run_in_threadpool(dataset_store.get_dataset, engine, info.org_id, name) is None:
        raise missing(name)
    try:
        rows, cursor = await run_in_threadpool(
            lambda: dataset_store.list_items(
                engine,
                info.org_id,
                name,
                limit,
                request.query_params.get("cursor") or None,
                archived=archived == "true",
            )
        )
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_cursor") from exc
    return JSONResponse({"data": [item_api(r) for r in rows], "next_cursor": cursor})


def _checked(doc: Any, where: str = "") -> Item:
    try:
        return check_item(doc)
    except ItemError as exc:
        raise ApiError(400, f"{where}{exc}", "invalid_item") from exc


async def add_items(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = dataset_name(request)
    doc = await read_json_object(request)
    if set(doc) == {"items"}:
        given = doc["items"]
        if not isinstance(given, list) or not 1 <= len(given) <= MAX_ITEMS_PER_POST:
            raise ApiError(
                400, f"items must be a list of 1 to {MAX_ITEMS_PER_POST} items", "invalid_item"
            )
        items = [_checked(d, f"items[{i}]: ") for i, d in enumerate(given)]
    else:
        items = [_checked(doc)]
    added = await run_in_threadpool(
        dataset_store.add_items, request.app.state.engine, info.org_id, name, items, by(info)
    )
    if added is None:
        raise missing(name)
    return JSONResponse({"added": len(added.ids), "skipped": added.skipped, "ids": added.ids}, 201)


async def get_item(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    name, ident = dataset_name(request), item_id(request)
    engine = request.app.state.engine
    row = await run_in_threadpool(dataset_store.get_item, engine, info.org_id, name, ident)
    if row is None:
        raise ApiError(404, f"No item {ident!r} in dataset {name!r}.", "not_found")
    return JSONResponse(item_api(row))


async def replace_item(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name, ident = dataset_name(request), item_id(request)
    item = _checked(await read_json_object(request))
    try:
        row = await run_in_threadpool(
            dataset_store.replace_item,
            request.app.state.engine,
            info.org_id,
            name,
            ident,
            item,
            by(info),
        )
    except dataset_store.DuplicateItem as exc:
        raise ApiError(409, "Another item of the dataset has this content.", "conflict") from exc
    if row is None:
        raise ApiError(404, f"No live item {ident!r} in dataset {name!r}.", "not_found")
    return JSONResponse(item_api(row), 201)


async def archive_item(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name, ident = dataset_name(request), item_id(request)
    engine = request.app.state.engine
    if not await run_in_threadpool(dataset_store.archive_item, engine, info.org_id, name, ident):
        raise ApiError(404, f"No live item {ident!r} in dataset {name!r}.", "not_found")
    return Response(status_code=204)


routes = [
    Route("/api/v1/datasets", list_datasets, methods=["GET"]),
    Route("/api/v1/datasets", create_dataset, methods=["POST"]),
    Route("/api/v1/datasets/{name}", get_dataset, methods=["GET"]),
    Route("/api/v1/datasets/{name}", update_dataset, methods=["PATCH"]),
    Route("/api/v1/datasets/{name}", delete_dataset, methods=["DELETE"]),
    Route("/api/v1/datasets/{name}/items", list_items, methods=["GET"]),
    Route("/api/v1/datasets/{name}/items", add_items, methods=["POST"]),
    Route("/api/v1/datasets/{name}/items/{item_id}", get_item, methods=["GET"]),
    Route("/api/v1/datasets/{name}/items/{item_id}", replace_item, methods=["PUT"]),
    Route("/api/v1/datasets/{name}/items/{item_id}", archive_item, methods=["DELETE"]),
]
