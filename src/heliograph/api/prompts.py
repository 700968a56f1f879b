"""Prompt management API: prompts, versions, labels, and compiling a version with inputs.

Admin keys write (create prompts and versions, move labels); read keys read and compile.
Write keys, which applications hold to send traffic, can do neither: a prompt's text is as
private as the records. A prompt or label another organization holds is answered as absent.

``GET /api/v1/prompts/<name>`` answers the version a label points at (``production`` by
default) or a numbered one, with an ETag of its content: an SDK polling a label gets a 304
until the label moves. Numbered versions never change, so they may be cached for a day.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.query import read_json_object
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.auth.keys import KeyInfo
from heliograph.prompts.templates import InputError, TemplateError
from heliograph.prompts.versions import Version, VersionError, check_version, render
from heliograph.store import prompts as prompt_store
from heliograph.store.requests import iso_ms

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}", re.ASCII)
LABEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.ASCII)
DEFAULT_LABEL = "production"
MAX_DESCRIPTION = 2000
CACHE_LABEL = "private, no-cache"
CACHE_VERSION = "private, max-age=86400, immutable"


DESCRIPTION_RULE = (
    f"description must be a string of at most {MAX_DESCRIPTION} characters (and no NUL character)"
)


def description_problem(value: object) -> bool:
    """True when ``value`` cannot be a description (the dashboard's form checks the same)."""
    return (
        not isinstance(value, str)
        or len(value) > MAX_DESCRIPTION
        or "\x00" in value  # PostgreSQL cannot store it
    )


async def read_description(request: Request) -> str:
    """The body of a description update: exactly ``{"description": "..."}``, within the rule."""
    doc = await read_json_object(request)
    if set(doc) != {"description"}:
        raise ApiError(400, 'body must be {"description": "..."}', "invalid_parameter")
    if description_problem(doc["description"]):
        raise ApiError(400, DESCRIPTION_RULE, "invalid_parameter")
    description: str = doc["description"]
    return description


def _by(info: KeyInfo) -> str:
    """Who made a change, as stored: the key (the dashboard will add ``user:<id>``)."""
    return f"key:{info.id}"


def _prompt_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not NAME.fullmatch(name):  # never stored, so never found
        raise ApiError(404, f"No prompt {name!r} in this organization.", "not_found")
    return name


def _missing(name: str) -> ApiError:
    return ApiError(404, f"No prompt {name!r} in this organization.", "not_found")


def prompt_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "description": row["description"],
        "latest_version": row.get("latest_version"),
        "labels": row.get("labels", {}),
        "created_at": iso_ms(row["created_at"]),
        "created_by": row["created_by"],
        "updated_at": iso_ms(row["updated_at"]),
    }


def version_api(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("name", "version", "messages", "model", "upstream", "params")}
    out |= {"variables": row["variables"], "message": row["message"]}
    return out | {"created_at": iso_ms(row["created_at"]), "created_by": row["created_by"]}


async def create_prompt(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    doc = await read_json_object(request)
    name, description = doc.get("name"), doc.get("description", "")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ApiError(
            400,
            "name must be 1 to 100 characters: lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit",
            "invalid_parameter",
        )
    if description_problem(description):
        raise ApiError(400, DESCRIPTION_RULE, "invalid_parameter")
    if set(doc) - {"name", "description"}:
        raise ApiError(400, "body may hold only name and description", "invalid_parameter")
    engine = request.app.state.engine
    try:
        row = await run_in_threadpool(
            prompt_store.create_prompt,
            engine,
            info.org_id,
            name,
            description,
            _by(info),
        )
    except prompt_store.DuplicateName as exc:
        raise ApiError(409, f"A prompt named {name!r} already exists.", "conflict") from exc
    row |= {"latest_version": None, "labels": dict.fromkeys(prompt_store.DEFAULT_LABELS)}
    return JSONResponse(prompt_api(row), 201)


async def list_prompts(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    rows = await run_in_threadpool(prompt_store.list_prompts, request.app.state.engine, info.org_id)
    return JSONResponse({"data": [prompt_api(r) for r in rows]})


def _selector(label: object, version: object) -> tuple[str | None, int | None]:
    """(label, version) from a query or a body: at most one, label production by default."""
    if label is not None and version is not None:
        raise ApiError(400, "give label or version, not both", "invalid_parameter")
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31:
            raise ApiError(400, "version must be a positive integer", "invalid_parameter")
        return None, version
    if label is None:
        return DEFAULT_LABEL, None
    if not isinstance(label, str):
        raise ApiError(400, "label must be a string", "invalid_parameter")
    return label, None


async def _resolve(
    request: Request, org_id: str, name: str, label: str | None, version: int | None
) -> dict[str, Any]:
    """The stored version a label or number names in this org, or a 404 saying what is not."""
    engine = request.app.state.engine
    if label is not None:
        found = (
            None
            if not LABEL.fullmatch(label)
            else await run_in_threadpool(prompt_store.get_label, engine, org_id, name, label)
        )
        if found is None:
            exists = await run_in_threadpool(prompt_store.get_prompt, engine, org_id, name)
            if exists is None:
                raise _missing(name)
            raise ApiError(404, f"Prompt {name!r} has no label {label!r}.", "not_found")
        if found["version"] is None:
            raise ApiError(
                404, f"Label {label!r} of prompt {name!r} points at no version yet.", "not_found"
            )
        version = found["version"]
    assert version is not None
    row = await run_in_threadpool(prompt_store.get_version, engine, org_id, name, version)
    if row is None:
        exists = await run_in_threadpool(prompt_store.get_prompt, engine, org_id, name)
        if exists is None:
            raise _missing(name)
        raise ApiError(404, f"Prompt {name!r} has no version {version}.", "not_found")
    return row


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


async def get_prompt(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ("label", "version"))
    name = _prompt_name(request)
    query = request.query_params
    number: object = query.get("version")
    if isinstance(number, str) and number.isascii() and number.isdigit() and len(number) < 12:
        number = int(number)
    label, version = _selector(query.get("label"), number)
    row = await _resolve(request, info.org_id, name, label, version)
    body = orjson.dumps(version_api(row) | {"label": label})
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_LABEL if label else CACHE_VERSION}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


async def create_version(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = _prompt_name(request)
    doc = await read_json_object(request)
    try:
        fields = check_version(doc)
    except TemplateError as exc:
        raise ApiError(400, str(exc), "invalid_template") from exc
    except VersionError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc
    number = await run_in_threadpool(
        prompt_store.create_version,
        request.app.state.engine,
        info.org_id,
        name,
        fields,
        _by(info),
    )
    if number is None:
        raise _missing(name)
    return JSONResponse({"version": number}, 201)


async def list_versions(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    name = _prompt_name(request)
    engine = request.app.state.engine
    if await run_in_threadpool(prompt_store.get_prompt, engine, info.org_id, name) is None:
        raise _missing(name)
    rows = await run_in_threadpool(prompt_store.list_versions, engine, info.org_id, name)
    return JSONResponse({"data": [version_api(r) for r in rows]})


async def move_label(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = _prompt_name(request)
    label = request.path_params["label"]
    if not LABEL.fullmatch(label):
        raise ApiError(
            400,
            "label must be 1 to 64 characters: lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit",
            "invalid_parameter",
        )
    doc = await read_json_object(request)
    _, version = _selector(None, doc.get("version"))
    if version is None or set(doc) != {"version"}:
        raise ApiError(400, 'body must be {"version": <number>}', "invalid_parameter")
    engine = request.app.state.engine
    moved = await run_in_threadpool(
        prompt_store.move_label, engine, info.org_id, name, label, version, _by(info)
    )
    if moved is None:
        if await run_in_threadpool(prompt_store.get_prompt, engine, info.org_id, name) is None:
            raise _missing(name)
        raise ApiError(404, f"Prompt {name!r} has no version {version}.", "not_found")
    return JSONResponse({"label": label, "version": moved[1], "previous_version": moved[0]})


async def list_labels(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    name = _prompt_name(request)
    engine = request.app.state.engine
    if await run_in_threadpool(prompt_store.get_prompt, engine, info.org_id, name) is None:
        raise _missing(name)
    labels = await run_in_threadpool(prompt_store.list_labels, engine, info.org_id, name)
    history = await run_in_threadpool(prompt_store.label_history, engine, info.org_id, name)
    return JSONResponse(
        {
            "data": [
                {
                    "label": r["label"],
                    "version": r["version"],
                    "updated_at": iso_ms(r["updated_at"]),
                    "updated_by": r["updated_by"],
                }
                for r in labels
            ],
            "history": [  # built key by key: "at" and "by" come back as quoted names
                {
                    "label": h["label"],
                    "from_version": h["from_version"],
                    "to_version": h["to_version"],
                    "at": iso_ms(h["at"]),
                    "by": h["by"],
                }
                for h in history
            ],
        }
    )


async def update_prompt(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = _prompt_name(request)
    description = await read_description(request)
    engine = request.app.state.engine
    done = await run_in_threadpool(
        prompt_store.set_description, engine, info.org_id, name, description
    )
    if not done:
        raise _missing(name)
    row = await run_in_threadpool(prompt_store.get_prompt, engine, info.org_id, name)
    if row is None:  # deleted in between
        raise _missing(name)
    return JSONResponse(prompt_api(row))


async def delete_prompt(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = _prompt_name(request)
    engine = request.app.state.engine
    if not await run_in_threadpool(prompt_store.delete_prompt, engine, info.org_id, name):
        raise _missing(name)
    return Response(status_code=204)


async def compile_prompt(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    name = _prompt_name(request)
    doc = await read_json_object(request)
    if set(doc) - {"inputs", "label", "version"}:
        raise ApiError(400, "body may hold only inputs, label and version", "invalid_parameter")
    label, version = _selector(doc.get("label"), doc.get("version"))
    row = await _resolve(request, info.org_id, name, label, version)
    try:
        messages = render(Version.from_row(row), doc.get("inputs", {}))
    except InputError as exc:
        raise ApiError(exc.status, str(exc), exc.code) from exc
    out = {k: row[k] for k in ("name", "version", "model", "upstream", "params")}
    return JSONResponse(out | {"label": label, "messages": messages})


routes = [
    Route("/api/v1/prompts", list_prompts, methods=["GET"]),
    Route("/api/v1/prompts", create_prompt, methods=["POST"]),
    Route("/api/v1/prompts/{name}", get_prompt, methods=["GET"]),
    Route("/api/v1/prompts/{name}", update_prompt, methods=["PATCH"]),
    Route("/api/v1/prompts/{name}", delete_prompt, methods=["DELETE"]),
    Route("/api/v1/prompts/{name}/versions", list_versions, methods=["GET"]),
    Route("/api/v1/prompts/{name}/versions", create_version, methods=["POST"]),
    Route("/api/v1/prompts/{name}/labels", list_labels, methods=["GET"]),
    Route("/api/v1/prompts/{name}/labels/{label}", move_label, methods=["PUT"]),
    Route("/api/v1/prompts/{name}/compile", compile_prompt, methods=["POST"]),
]
