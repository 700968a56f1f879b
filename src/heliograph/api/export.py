"""``GET /api/v1/requests/export``: every matching record as JSONL or CSV, streamed.

Takes the same filters as ``GET /api/v1/requests`` (every ``store.fields`` spelling, and
``filter=<Helicone tree>``), plus ``format`` and ``include_bodies`` (prompt and output text and
the raw bodies; the columns are every export door's, ``store.export.columns``). Streamed
one batch at a time, each batch read in a worker thread, so there is no row cap and memory
stays flat however large the export; all validation happens before the first byte, so errors
are still proper 400s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from heliograph.api.auth import require
from heliograph.api.params import check_params
from heliograph.api.requests import parse_filter
from heliograph.api.responses import ApiError
from heliograph.store import export as export_store

PARAMS = ("format", "include_bodies")
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


def _flag(value: str | None, name: str) -> bool:
    text = (value or "").strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ApiError(400, f"{name} must be true or false", "invalid_parameter")


async def export(request: Request) -> Response:
    info = await require(request, "read")
    check_params(request, PARAMS, filters=True)
    q = request.query_params
    fmt = q.get("format", "jsonl")
    if fmt not in export_store.FORMATS:
        formats = ", ".join(export_store.FORMATS)
        raise ApiError(400, f"format must be one of {formats}", "invalid_parameter")
    f = parse_filter(request)
    query = export_store.export_query(
        info.org_id, f, _flag(q.get("include_bodies"), "include_bodies")
    )
    encoder = export_store.Encoder(fmt, query.include_bodies)
    engine = request.app.state.engine

    async def chunks() -> AsyncIterator[bytes]:
        header = encoder.header()
        if header:
            yield header
        after: export_store.Keyset | None = None
        while True:
            chunk, after = await run_in_threadpool(
                export_store.encode_batch, engine, query, encoder, after
            )
            if chunk:
                yield chunk
            if after is None:
                return

    filename = f"heliograph-requests.{fmt}"
    return StreamingResponse(
        chunks(),
        media_type=encoder.media_type,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


routes = [Route("/api/v1/requests/export", export, methods=["GET"])]
