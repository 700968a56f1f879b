"""The Requests page, its live JSON feed and CSV/JSONL export (the request page is
``request_detail``).

All three list views share ``parse_request_query`` (the API's filter spellings, read by
``store.filter_params``) and ``store.search``, so the table, the live rows and the export
always hold the same set, and the same set as the API for the same parameters. Export
streams: rows are fetched a batch at a time with the keyset cursor and written as they come,
with no cap and constant memory. Which columns the table shows is ``columns``' business; the
live feed sends every field and the browser fills the columns the table has.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from heliograph.capture.openwebui_tasks import TASK_NAMES
from heliograph.store import datasets as dataset_store
from heliograph.store import export as export_store
from heliograph.store import filters, search
from heliograph.store.times import TimeError, parse_time
from heliograph.web import chat, columns, names
from heliograph.web.context import Ctx
from heliograph.web.format import (
    DASH,
    cost_hint,
    ms,
    path,
    query_url,
    tokens,
    usd,
    when,
    zone_label,
)
from heliograph.web.query import RequestQuery, parse_request_query
from heliograph.web.request_detail import tok_s, where

LIVE_LIMIT = 100


def row_view(
    row: dict[str, Any],
    preview: str = "",
    people: names.People | None = None,
    upstreams: dict[str, Any] | None = None,
    query: str = "",
    tz: dt.tzinfo | None = None,
) -> dict[str, Any]:
    """A record as the table shows it; the live feed sends exactly this to the browser.

    The user is shown by name and email when the directory (``people``) knows them, with the
    id as the tooltip; an Open WebUI background task shows as a badge linking to its filter.
    ``query`` (the table's filters) is kept on the link to the record, so its page can walk
    the same list; ``upstreams`` tells local from cloud models; ``tz`` is the page's timezone.
    """
    model = row.get("model")
    user, session = row.get("user_id"), row.get("session_id")
    task = row.get("task")
    estimated = "~" if row.get("tokens_estimated") else ""
    state = row.get("state")
    status = row.get("status")
    error = str(row.get("error") or "")
    prompt, version = row.get("prompt_name"), row.get("prompt_version")
    return {
        "id": row["id"],
        "href": path("requests", row["id"]) + (f"?{query}" if query else ""),
        "created_at": row["created_at"],
        "time": when(row["created_at"], tz),
        "status": str(status) if status else DASH,
        "state": state,
        "status_class": "ok" if state == "ok" else ("warn" if state == "cancelled" else "err"),
        "provider": row.get("provider") or "",
        "model": model or row.get("endpoint") or "",
        "model_href": query_url("/requests", {"model": model}) if model else "",
        "user": names.label(user, people),
        "user_id": user or "",
        "user_href": path("users", user) if user else "",
        "task": task or "",
        "task_href": query_url("/requests", {"task": task}) if task else "",
        "session": session or "",
        "session_href": path("sessions", session) if session else "",
        "preview": preview,
        "tokens": estimated + tokens(row.get("total_tokens")),
        "tokens_title": f"{row.get('prompt_tokens') or 0} in, "
        f"{row.get('completion_tokens') or 0} out" + (" (estimated)" if estimated else ""),
        "cost": usd(row["cost_usd"]) if row.get("cost_known") else "unknown",
        "cost_title": "" if row.get("cost_known") else cost_hint(row),
        "latency": ms(row.get("latency_ms")),
        "cold": bool(row.get("cold_start")),
        "ttft": ms(row.get("ttft_ms")),
        "tps": tok_s(row.get("output_tokens_per_s")),
        "stream": "yes" if row.get("stream") else "no",
        "where": where(row, upstreams or {}) if upstreams is not None else "",
        "error": error,
        "status_title": f"{state}: {error}" if error else str(state or ""),
        "prompt_name": prompt or "",
        "prompt_href": path("prompts", prompt) if prompt else "",
        "prompt_version": f"v{version}" if version is not None else "",
        "prompt_version_href": query_url(
            "/requests", {"prompt_name": prompt, "prompt_version": version}
        )
        if prompt and version is not None
        else "",
    }


def table_rows(ctx: Ctx, rows: list[dict[str, Any]], query: str = "") -> list[dict[str, Any]]:
    """Table rows for records: their prompt previews and their users' names, one query each;
    times in the page's timezone."""
    bodies = search.request_bodies_for(ctx.engine, ctx.org_id, [r["id"] for r in rows])
    people = names.lookup(ctx.engine, ctx.org_id, [r.get("user_id") for r in rows])
    upstreams = ctx.settings.resolved_upstreams()
    return [
        row_view(r, chat.preview(bodies.get(r["id"])), people, upstreams, query, ctx.tz)
        for r in rows
    ]


def page_state(ctx: Ctx) -> dict[str, str]:
    """What every Requests link keeps besides the filters: the columns and the timezone
    (each left out when it is the default)."""
    zone = zone_label(ctx.tz)
    return {
        "cols": columns.param(columns.chosen(ctx.request.query_params)),
        "tz": "" if zone == "UTC" else zone,
    }


def _detail_query(rq: RequestQuery, state: dict[str, str]) -> str:
    """The filters a row's link carries to its page (no cursor, no live flag)."""
    link = query_url("", rq.pairs(cursor=None, **state))
    return link[1:] if link.startswith("?") else ""


def _list_page(
    ctx: Ctx, rq: RequestQuery, cursor: str | None, limit: int | None = None
) -> tuple[list[dict[str, Any]], search.Page]:
    page = search.search_requests(
        ctx.engine,
        ctx.org_id,
        rq.filter,
        limit or rq.limit,
        cursor,
        sort=rq.sort,
        ascending=rq.ascending,
    )
    return table_rows(ctx, page.rows, _detail_query(rq, page_state(ctx))), page


async def requests_page(ctx: Ctx) -> Response:
    query = ctx.request.query_params
    chosen = columns.chosen(query)
    state = page_state(ctx)
    cols = state["cols"]
    if "col" in query:  # the column picker's form: one canonical cols= in the URL
        kept = [(k, v) for k, v in query.multi_items() if k not in ("col", "cols")]
        return RedirectResponse(query_url("/requests", [*kept, ("cols", cols)]), 303)
    rq = parse_request_query(query)
    try:
        rows, page = await ctx.run(_list_page, ctx, rq, rq.cursor)
    except ValueError:
        rq.errors.append("That page link is no longer valid; showing the first page.")
        rows, page = await ctx.run(_list_page, ctx, rq, None)
    upstreams = sorted(ctx.settings.resolved_upstreams())
    datasets = []  # admins add ticked rows to one (web.datasets)
    if ctx.user.is_admin:
        datasets = await ctx.run(dataset_store.dataset_names, ctx.engine, ctx.org_id)
    return ctx.render(
        "requests.html",
        datasets=datasets,
        rq=rq,
        cols=chosen,
        cols_param=cols,
        state=state,
        all_columns=columns.COLUMNS,
        default_columns=columns.DEFAULT,
        rows=rows,
        page=page,
        providers=upstreams,
        task_names=TASK_NAMES,
        live=ctx.request.query_params.get("live") == "1",
        first_page=rq.cursor is None,
        now_ms=int(time.time() * 1000),
    )


async def requests_json(ctx: Ctx) -> Response:
    """Rows newer than ``after`` (epoch ms) for live mode, newest first, same filters."""
    rq = parse_request_query(ctx.request.query_params)
    after = ctx.request.query_params.get("after", "")
    try:
        after_ms = parse_time(after, "after") if after else int(time.time() * 1000) - 60_000
    except TimeError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    newer = filters.Leaf("created_at", "gte", after_ms)
    rq.filter.where = filters.all_of(rq.filter.where or filters.ALL, newer)
    rq.sort, rq.ascending = "time", False
    rows, _ = await ctx.run(_list_page, ctx, rq, None, LIVE_LIMIT)
    return JSONResponse({"rows": rows}, headers={"Cache-Control": "no-store"})


async def export(ctx: Ctx) -> Response:
    """The page's rows in its order, in the columns and cells of every export
    (``store.export``); ``include_bodies=1`` adds prompt and output text and the bodies."""
    kind = ctx.request.path_params["fmt"]
    if kind not in export_store.FORMATS:
        return ctx.not_found("Exports are .csv or .jsonl.")
    rq = parse_request_query(ctx.request.query_params)
    bodies = ctx.request.query_params.get("include_bodies", "") in ("1", "true", "on", "yes")
    encoder = export_store.Encoder(kind, bodies)
    body = export_store.search_bytes(
        ctx.engine, ctx.org_id, rq.filter, encoder, sort=rq.sort, ascending=rq.ascending
    )
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    headers = {
        "Content-Disposition": f'attachment; filename="heliograph-requests-{stamp}.{kind}"',
        "Cache-Control": "no-store",
    }
    return StreamingResponse(body, media_type=encoder.media_type, headers=headers)
