"""Items in bulk: from logged requests, from an uploaded JSONL or CSV file, and the export.

``POST .../items/from-requests`` takes ``{"ids": [...]}`` or a filter (``filter``, a Helicone
tree as ``POST /v1/request/query`` takes it, and/or ``params``, the URL spellings of
``GET /api/v1/requests``). ``dry_run`` answers how many requests match before anything is
added; at most ``limit`` (``MAX_FROM_REQUESTS`` by default and at most) are added, newest
first. Each request becomes an item through ``evals.dataset_items.item_from_record``.

``POST .../items/upload`` streams the body to a temporary file (in memory up to
``SPOOL_MEMORY``, on disk past it) and refuses it with 413 past ``MAX_UPLOAD_BYTES``; then
``import_file`` reads it a line at a time, keeping good lines, skipping duplicates and
reporting each bad line by number (the first ``MAX_REPORTED_ERRORS`` of them). The dashboard's
upload form uses the same two functions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.datasets import by, dataset_name, item_api, missing
from heliograph.api.params import check_params
from heliograph.api.query import read_json_object
from heliograph.api.requests import parse_tree
from heliograph.api.responses import ApiError, JSONResponse
from heliograph.evals.dataset_files import read_items
from heliograph.evals.dataset_items import Item, ItemError, item_from_record
from heliograph.store import dataset_sources, filter_params, filters
from heliograph.store import datasets as dataset_store
from heliograph.store.selection import RequestFilter

MAX_UPLOAD_BYTES = 32 * 1024 * 1024
SPOOL_MEMORY = 1024 * 1024
MAX_FROM_REQUESTS = 10_000
MAX_REPORTED_ERRORS = 100
BATCH = 500
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
CSV_TYPES = ("text/csv", "application/csv")


@dataclass
class Report:
    """What an import did: items added, duplicates skipped, bad lines (or requests)."""

    added: int = 0
    skipped: int = 0
    error_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def error(self, where: dict[str, Any], reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(where | {"reason": reason})

    def api(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "skipped": self.skipped,
            "error_count": self.error_count,
            "errors": self.errors,
        }


class Gone(Exception):
    """The dataset was deleted while items were being added."""


def _store(
    engine: Engine, org_id: str, name: str, items: list[Item], who: str, report: Report
) -> None:
    if not items:
        return
    added = dataset_store.add_items(engine, org_id, name, items, who)
    if added is None:
        raise Gone(name)
    report.added += len(added.ids)
    report.skipped += added.skipped
    report.ids += added.ids
    items.clear()


def import_file(
    engine: Engine, org_id: str, name: str, kind: str, file: IO[bytes], who: str
) -> Report:
    """Add the file's items to the dataset a batch at a time (Gone if it disappears)."""
    report, batch = Report(), []
    for line, found in read_items(kind, file):
        if isinstance(found, str):
            report.error({"line": line}, found)
            continue
        batch.append(found)
        if len(batch) >= BATCH:
            _store(engine, org_id, name, batch, who, report)
    _store(engine, org_id, name, batch, who, report)
    return report


def import_requests(
    engine: Engine, org_id: str, name: str, ids: list[str], with_expected: bool, who: str
) -> Report:
    """Add an item per request (ids of this organization; others are reported missing)."""
    report, batch, found = Report(), [], set()
    for record in dataset_sources.records_with_bodies(engine, org_id, ids):
        found.add(record["id"])
        try:
            batch.append(item_from_record(record, with_expected=with_expected))
        except ItemError as exc:
            report.error({"request_id": record["id"]}, str(exc))
        if len(batch) >= BATCH:
            _store(engine, org_id, name, batch, who, report)
    _store(engine, org_id, name, batch, who, report)
    for rid in dict.fromkeys(ids):
        if rid not in found:
            report.error({"request_id": rid[:100]}, "no such request in this organization")
    return report


def upload_kind(content_type: str) -> str:
    """jsonl or csv from the Content-Type; 415 otherwise."""
    media = content_type.split(";")[0].strip().lower()
    if media in JSONL_TYPES:
        return "jsonl"
    if media in CSV_TYPES:
        return "csv"
    raise ApiError(
        415,
        "upload JSONL (Content-Type: application/x-ndjson) or CSV (Content-Type: text/csv)",
        "unsupported_media_type",
    )


async def spool_body(request: Request) -> IO[bytes]:
    """The request body in a temporary file, read as it arrives; 413 past the limit."""
    too_large = ApiError(
        413, f"the upload is larger than {MAX_UPLOAD_BYTES} bytes", "body_too_large"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise too_large
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 (returned)
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise too_large
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


async def upload(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = dataset_name(request)
    kind = upload_kind(request.headers.get("content-type", ""))
    engine = request.app.state.engine
    if await run_in_threadpool(dataset_store.get_dataset, engine, info.org_id, name) is None:
        raise missing(name)
    spool = await spool_body(request)
    try:
        report = await run_in_threadpool(
            import_file, engine, info.org_id, name, kind, spool, by(info)
        )
    except Gone as exc:
        raise missing(name) from exc
    finally:
        spool.close()
    return JSONResponse(report.api())


def _flag(doc: dict[str, Any], key: str, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be true or false", "invalid_parameter")
    return value


def _selection(doc: dict[str, Any]) -> RequestFilter:
    """The filter of a from-requests body (``filter`` and ``params`` ANDed)."""
    items: list[filters.Filter] = []
    if "filter" in doc:
        items.append(parse_tree(doc["filter"]))
    params = doc.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise ApiError(400, "params must be an object of text values", "invalid_parameter")
    for key in params:
        if not filter_params.is_filter_param(key) or key == filter_params.TREE:
            raise ApiError(400, f"unknown filter parameter {key[:100]!r}", "invalid_parameter")
    try:
        items.append(filter_params.parse(params.items()))
    except filters.FilterError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from exc
    return RequestFilter(where=filters.all_of(*items))


def _ids(value: Any) -> list[str]:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_FROM_REQUESTS
        or not all(isinstance(i, str) and 0 < len(i) <= 100 for i in value)
    ):
        raise ApiError(
            400, f"ids must be a list of 1 to {MAX_FROM_REQUESTS} request ids", "invalid_parameter"
        )
    return value


async def from_requests(request: Request) -> Response:
    info = await require(request, "admin")
    check_params(request, ())
    name = dataset_name(request)
    doc = await read_json_object(request)
    allowed = {"ids", "filter", "params", "dry_run", "limit", "expected"}
    if set(doc) - allowed or ("ids" in doc) == ("filter" in doc or "params" in doc):
        raise ApiError(
            400,
            'body must be {"ids": [...]} or {"filter": {...}, "params": {...}, '
            '"dry_run": bool, "limit": N}, with "expected": bool',
            "invalid_parameter",
        )
    with_expected, dry_run = _flag(doc, "expected", True), _flag(doc, "dry_run", False)
    limit = doc.get("limit", MAX_FROM_REQUESTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_FROM_REQUESTS:
        raise ApiError(400, f"limit must be from 1 to {MAX_FROM_REQUESTS}", "invalid_parameter")
    engine, org = request.app.state.engine, info.org_id
    if await run_in_threadpool(dataset_store.get_dataset, engine, org, name) is None:
        raise missing(name)
    out: dict[str, Any] = {}
    if "ids" in doc:
        ids = _ids(doc["ids"])
    else:
        where = _selection(doc)
        matching = await run_in_threadpool(dataset_sources.count_matching, engine, org, where)
        out = {"matching": matching, "limit": limit, "would_add": min(matching, limit)}
        if dry_run:
            return JSONResponse(out)
        ids = await run_in_threadpool(dataset_sources.matching_ids, engine, org, where, limit)
    try:
        report = await run_in_threadpool(
            import_requests, engine, org, name, ids, with_expected, by(info)
        )
    except Gone as exc:
        raise missing(name) from exc
    return JSONResponse(out | report.api() | {"ids": report.ids})


def export_lines(engine: Engine, org_id: str, name: str) -> Iterator[bytes]:
    """A dataset's live items as JSONL lines, read in pages (the API's and the dashboard's
    export)."""
    for row in dataset_store.iter_items(engine, org_id, name):
        item = item_api(row)
        keep = ("id", "inputs", "expected", "metadata", "source_request_id")
        yield orjson.dumps({k: item[k] for k in keep}) + b"\n"


async def export(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, ())
    name = dataset_name(request)
    engine = request.app.state.engine
    if await run_in_threadpool(dataset_store.get_dataset, engine, info.org_id, name) is None:
        raise missing(name)
    headers = {"Content-Disposition": f'attachment; filename="{name}.jsonl"'}
    return StreamingResponse(
        export_lines(engine, info.org_id, name),
        media_type="application/x-ndjson",
        headers=headers,
    )


routes = [  # before api.datasets: its items/{item_id} would take these paths
    Route("/api/v1/datasets/{name}/items/from-requests", from_requests, methods=["POST"]),
    Route("/api/v1/datasets/{name}/items/upload", upload, methods=["POST"]),
    Route("/api/v1/datasets/{name}/items/export.jsonl", export, methods=["GET"]),
]
