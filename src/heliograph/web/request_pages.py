"""The Requests page, its live JSON feed, CSV/JSONL export, and the request detail page.

All three list views share ``parse_request_query`` (the API's filter spellings, read by
``store.filter_params``) and ``store.search``, so the table, the live rows and the export
always hold the same set, and the same set as the API for the same parameters. Export
streams: rows are fetched a batch at a time with the keyset cursor and written as they come,
with no cap and constant memory.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from heliograph.capture.openwebui_tasks import TASK_NAMES
from heliograph.store import export as export_store
from heliograph.store import filters, search
from heliograph.store.requests import get_request
from heliograph.store.times import TimeError, parse_time
from heliograph.web import chat, names, replay
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
)
from heliograph.web.query import RequestQuery, parse_request_query

LIVE_LIMIT = 100
RAW_DISPLAY_CHARS = 400_000
SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "cookie", "proxy-authorization")
def row_view(
    row: dict[str, Any], preview: str = "", people: names.People | None = None
) -> dict[str, Any]:
    """A record as the table shows it; the live feed sends exactly this to the browser.

    The user is shown by name and email when the directory (``people``) knows them, with the
    id as the tooltip; an Open WebUI background task shows as a badge linking to its filter.
    """
    model = row.get("model")
    user, session = row.get("user_id"), row.get("session_id")
    task = row.get("task")
    estimated = "~" if row.get("tokens_estimated") else ""
    state = row.get("state")
    status = row.get("status")
    return {
        "id": row["id"],
        "href": path("requests", row["id"]),
        "created_at": row["created_at"],
        "time": when(row["created_at"]),
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
        "ttft": ms(row.get("ttft_ms")),
    }


def table_rows(ctx: Ctx, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows for records: their prompt previews and their users' names, one query each."""
    bodies = search.request_bodies_for(ctx.engine, ctx.org_id, [r["id"] for r in rows])
    people = names.lookup(ctx.engine, ctx.org_id, [r.get("user_id") for r in rows])
    return [row_view(r, chat.preview(bodies.get(r["id"])), people) for r in rows]


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
    return table_rows(ctx, page.rows), page


async def requests_page(ctx: Ctx) -> Response:
    rq = parse_request_query(ctx.request.query_params)
    try:
        rows, page = await ctx.run(_list_page, ctx, rq, rq.cursor)
    except ValueError:
        rq.errors.append("That page link is no longer valid; showing the first page.")
        rows, page = await ctx.run(_list_page, ctx, rq, None)
    upstreams = sorted(ctx.request.app.state.settings.resolved_upstreams())
    return ctx.render(
        "requests.html",
        rq=rq,
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


def _raw(value: Any) -> str:
    text = chat.pretty(value) if value is not None else ""
    if len(text) > RAW_DISPLAY_CHARS:
        text = text[:RAW_DISPLAY_CHARS] + f"\n… ({len(text) - RAW_DISPLAY_CHARS:,} more characters)"
    return text


def _headers(headers: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name, value in sorted(headers.items()):
        shown = "[REDACTED]" if name.lower() in SECRET_HEADERS else str(value)
        out.append((name, shown))
    return out


def timing(row: dict[str, Any]) -> dict[str, Any]:
    """Latency split into time to first token and generation (streams), or just total."""
    total, ttft, load = row.get("latency_ms"), row.get("ttft_ms"), row.get("load_ms")
    parts = []
    if load:
        parts.append(("load", "Model load", load))
    if ttft is not None and total is not None:
        parts.append(("ttft", "Time to first token", max(0.0, ttft - (load or 0))))
        parts.append(("gen", "Generation", max(0.0, total - ttft)))
    elif total is not None:
        parts.append(("total", "Total", total - (load or 0)))
    width = sum(p[2] for p in parts) or 1.0
    bars, x = [], 0.0
    for css, label, value in parts:
        share = value / width * 100
        bars.append({"css": css, "label": label, "value": value, "x": x, "w": share})
        x += share
    return {"total": total, "ttft": ttft, "parts": bars}


async def request_detail(ctx: Ctx) -> Response:
    rid = ctx.request.path_params["request_id"]
    row = await ctx.run(get_request, ctx.engine, ctx.org_id, rid)
    if row is None:
        return ctx.not_found("No such request in your organization.")
    people = await ctx.run(names.lookup, ctx.engine, ctx.org_id, [row.get("user_id")])
    return ctx.render(
        "request.html",
        r=row,
        people=people,
        view=row_view(row, people=people),
        prompt=chat.conversation(row.get("request_body")),
        tools=chat.tool_names(row.get("request_body")),
        answer=chat.output(row.get("response_body")),
        timing=timing(row),
        request_headers=_headers(row.get("request_headers") or {}),
        response_headers=_headers(row.get("response_headers") or {}),
        raw_request=_raw(row.get("request_body")),
        raw_response=_raw(row.get("response_body")),
        replay_problem=replay.replay_problem(row, ctx.request.app.state.gateway.upstreams),
        replay_body=replay.replay_body(row)
        if ctx.user.is_admin and row.get("request_body") is not None
        else "",
    )
