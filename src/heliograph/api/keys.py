"""Key management API for admin keys: list, create (shown once), revoke."""

from __future__ import annotations

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.auth.keys import SCOPES, KeyInfo, create_key
from heliograph.store import keys as key_store
from heliograph.store.requests import iso_ms


def _public(row: dict[str, object]) -> dict[str, object]:
    out = {k: row[k] for k in ("id", "name", "scope", "prefix")}
    for name in ("created_at", "revoked_at", "last_used_at"):
        value = row.get(name)
        out[name] = iso_ms(value) if isinstance(value, int) else None
    return out


async def list_keys(request: Request) -> Response:
    info = await require(request, "admin")
    rows = await run_in_threadpool(key_store.list_keys, request.app.state.engine, info.org_id)
    return JSONResponse({"data": [_public(r) for r in rows]})


async def create(request: Request) -> Response:
    info = await require(request, "admin")
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body must be JSON", "invalid_json") from exc
    if not isinstance(doc, dict):
        raise ApiError(400, "body must be a JSON object", "invalid_json")
    name, scope = doc.get("name"), doc.get("scope")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ApiError(
            400, "name must be a non-empty string (at most 200 characters)", "invalid_parameter"
        )
    if scope not in SCOPES:
        raise ApiError(400, f"scope must be one of {', '.join(SCOPES)}", "invalid_parameter")
    key_id, key = await run_in_threadpool(
        create_key, request.app.state.engine, org_id=info.org_id, name=name.strip(), scope=scope
    )
    request.app.state.keys.add(key, KeyInfo(key_id, info.org_id, scope))
    return JSONResponse({"id": key_id, "name": name.strip(), "scope": scope, "key": key}, 201)


async def revoke(request: Request) -> Response:
    info = await require(request, "admin")
    key_id = request.path_params["key_id"]
    count = await run_in_threadpool(
        key_store.revoke_key, request.app.state.engine, key_id, info.org_id
    )
    if not count:
        raise ApiError(404, f"No active key {key_id!r} in this organization.", "not_found")
    await run_in_threadpool(request.app.state.keys.load)
    return JSONResponse({"id": key_id, "revoked": True})


routes = [
    Route("/api/v1/keys", list_keys, methods=["GET"]),
    Route("/api/v1/keys", create, methods=["POST"]),
    Route("/api/v1/keys/{key_id}", revoke, methods=["DELETE"]),
]
