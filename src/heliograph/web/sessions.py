"""The Sessions list (search, sort and pages in SQL) and one session: transcript and tree.

Sessions are the ones named by traffic (``Helicone-Session-Id``, Open WebUI's chat id); a
session's name is its latest ``Helicone-Session-Name`` or the title Open WebUI generated for
the chat. The list is ``store.sessions.list_sessions``: the sort is a column name in the URL
(``?sort=-cost``, as on every table) and the pages walk a keyset cursor that keeps the time
of the first page, so sessions that start while someone pages never shift or repeat rows.
A session's page shows its conversation as a transcript (``web.session_transcript``), then
every request as a tree by session path on a timeline.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from heliograph.store import search, sessions
from heliograph.web import names
from heliograph.web.context import Ctx
from heliograph.web.query import Window, now_ms
from heliograph.web.request_pages import table_rows
from heliograph.web.session_transcript import MAX_REQUESTS, Transcript, build
from heliograph.web.sorting import TableSort

PAGE_SIZE = 50
MAX_QUERY = 200


def _load_list(
    ctx: Ctx, window: Window, text: str, sorter: TableSort, cursor: str | None
) -> tuple[sessions.SessionPage, names.People, str]:
    """A page of sessions and their users' names; a cursor that is no longer valid (another
    order, tampered) gives the first page and a note."""
    problem = ""

    def read(cursor: str | None) -> sessions.SessionPage:
        return sessions.list_sessions(
            ctx.engine,
            ctx.org_id,
            window.since_ms,
            window.until_ms,
            now_ms=now_ms(),
            text=text,
            sort=sorter.column,
            descending=sorter.descending,
            limit=PAGE_SIZE,
            cursor=cursor,
        )

    try:
        page = read(cursor)
    except ValueError:
        problem = "That page link is no longer valid; showing the first page."
        page = read(None)
    people = names.lookup(ctx.engine, ctx.org_id, [r["user_id"] for r in page.rows])
    return page, people, problem


async def sessions_page(ctx: Ctx) -> Response:
    window = await ctx.window()
    q = ctx.request.query_params
    text = q.get("q", "").strip()[:MAX_QUERY]
    sorter = TableSort(q, "/sessions", sessions.SORTS, "-last")
    cursor = q.get("cursor") or None
    page, people, problem = await ctx.run(_load_list, ctx, window, text, sorter, cursor)
    # not "kept": base.html sets that name for the navigation links
    here_params = {k: v for k, v in q.multi_items() if k != "cursor"}
    return ctx.render(
        "sessions.html",
        window=window,
        rows=page.rows,
        page=page,
        people=people,
        text=text,
        sorter=sorter,
        problem=problem,
        paged=cursor is not None and not problem,
        here_params=here_params,
        extra={k: v for k, v in here_params.items() if k in ("q", "sort")},
    )


def session_tree(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ordered as a tree by session path (``/a``, ``/a/b``...), by time within a path,
    with their depth and their offset and length on the session's timeline (percent)."""
    if not rows:
        return []
    start = min(r["created_ms"] for r in rows)
    end = max(r["created_ms"] + (r["latency_ms"] or 0) for r in rows)
    span = max(end - start, 1)

    def key(r: dict[str, Any]) -> tuple[list[str], int]:
        parts = [p for p in (r["session_path"] or "").split("/") if p]
        return parts, r["created_ms"]

    out = []
    for r in sorted(rows, key=key):
        parts = key(r)[0]
        offset = (r["created_ms"] - start) / span * 100
        width = max(0.5, (r["latency_ms"] or 0) / span * 100)
        out.append(
            {
                **r,
                "depth": max(0, len(parts) - 1),
                "path_label": "/" + "/".join(parts) if parts else "",
                "offset": min(offset, 99.5),
                "width": min(width, 100 - min(offset, 99.5)),
                "at_ms": r["created_ms"] - start,
            }
        )
    return out


def _load_session(ctx: Ctx, session_id: str) -> dict[str, Any] | None:
    rows = search.session_requests(ctx.engine, ctx.org_id, session_id)
    if not rows:
        return None
    wanted = [r["id"] for r in rows if r["kind"] == "llm" and not r.get("task")]
    bodies = sessions.bodies(ctx.engine, ctx.org_id, wanted[-MAX_REQUESTS:])
    users = sorted({r["user_id"] for r in rows if r["user_id"]})
    return {
        "rows": rows,
        "transcript": build(rows, bodies),
        "views": {v["id"]: v for v in table_rows(ctx, rows)},
        "users": users,
        "people": names.lookup(ctx.engine, ctx.org_id, users),
        "name": sessions.session_names(ctx.engine, ctx.org_id, [session_id]).get(session_id),
    }


def _facts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    known = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    first = rows[0]["created_ms"]
    last = max(r["created_ms"] + (r["latency_ms"] or 0) for r in rows)
    return {
        "cost": sum(known) if known else None,
        "unpriced": len(rows) - len(known),
        "tokens": sum(r["total_tokens"] or 0 for r in rows),
        "duration": last - first,
        "first_ms": first,
        "last_ms": rows[-1]["created_ms"],
        "errors": sum(1 for r in rows if r["state"] != "ok"),
        "models": sorted({r["model"] for r in rows if r["model"]}),
        "other_names": sorted({r["session_name"] for r in rows if r["session_name"]}),
    }


async def session_page(ctx: Ctx) -> Response:
    session_id = ctx.request.path_params["session_id"]
    data = await ctx.run(_load_session, ctx, session_id)
    if data is None:
        return ctx.not_found("No such session in your organization.")
    transcript: Transcript = data["transcript"]
    facts = _facts(data["rows"])
    name = data["name"]
    facts["other_names"] = [n for n in facts["other_names"] if n != name]
    return ctx.render(
        "session.html",
        session_id=session_id,
        name=name,
        rows=session_tree(data["rows"]),
        views=data["views"],
        transcript=transcript,
        users=data["users"],
        people=data["people"],
        **facts,
    )
