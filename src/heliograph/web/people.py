"""Users and Sessions: lists with usage, a user's page, and a session's timeline by path.

Users and sessions here are the ones named by traffic (``Helicone-User-Id``,
``Helicone-Session-Id``, Open WebUI's user and chat), not dashboard accounts. Users are shown
by name and email from the end-user directory (one lookup per page), linked by id; the list
narrows to a group's current members with ``?group=``.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from heliograph.store import analytics, end_users, search
from heliograph.store.selection import RequestFilter
from heliograph.web import names
from heliograph.web.charts import Series, chart
from heliograph.web.context import Ctx
from heliograph.web.format import number, query_url, usd
from heliograph.web.query import Window, parse_window
from heliograph.web.request_pages import table_rows

LIST_LIMIT = 500
USER_REQUESTS = 25
MAX_GROUP = 255
PERSON = ("name", "email", "role", "groups", "identity")


def _load_users(ctx: Ctx, window: Window, group: str) -> dict[str, Any]:
    engine, org, since, until = ctx.engine, ctx.org_id, window.since_ms, window.until_ms
    where = {analytics.GROUP: group} if group else None
    rows = analytics.breakdown(engine, org, "user_id", since, until, LIST_LIMIT, where)
    keys = [r["key"] for r in rows if r["key"] is not None]
    top = analytics.top_pairs(engine, org, "user_id", "model", keys, since, until)
    members = end_users.group_members(engine, org).get(group, []) if group else []
    return {
        "rows": rows,
        "top": top,
        "people": names.lookup(engine, org, keys),
        "idle": sorted(set(members) - set(keys)),
    }


async def users_page(ctx: Ctx) -> Response:
    window = parse_window(ctx.request.query_params, "30d")
    group = ctx.request.query_params.get("group", "").strip()[:MAX_GROUP]
    data = await ctx.run(_load_users, ctx, window, group)
    named = [r for r in data["rows"] if r["key"] is not None]
    anonymous = next((r for r in data["rows"] if r["key"] is None), None)
    return ctx.render(
        "users.html",
        window=window,
        rows=named,
        anonymous=anonymous,
        top=data["top"],
        people=data["people"],
        group=group,
        idle=data["idle"],
        extra={"group": group} if group else {},
    )


def _load_user(ctx: Ctx, window: Window, user_id: str) -> dict[str, Any]:
    engine, org, since, until = ctx.engine, ctx.org_id, window.since_ms, window.until_ms
    scope = {"dimension": "user_id", "value": user_id}
    page = search.search_requests(engine, org, RequestFilter(user_id=user_id), USER_REQUESTS)
    return {
        "person": {
            **dict.fromkeys(PERSON),
            **names.lookup(engine, org, [user_id]).get(user_id, {}),
        },
        "unverified": sum(1 for r in page.rows if r.get("identity") == "unverified"),
        "totals": analytics.scoped_summary(engine, org, since, until, **scope),
        "points": analytics.scoped_timeseries(engine, org, since, until, window.bucket_ms, **scope),
        "models": analytics.top_pairs(
            engine, org, "user_id", "model", [user_id], since, until, per_key=10
        )[user_id],
        "requests": table_rows(ctx, page.rows),
        "more": page.next_cursor is not None,
    }


async def user_page(ctx: Ctx) -> Response:
    user_id = ctx.request.path_params["user_id"]
    window = parse_window(ctx.request.query_params, "30d")
    data = await ctx.run(_load_user, ctx, window, user_id)
    if not data["requests"]:
        return ctx.not_found("No requests from this user in your organization.")
    links = [
        query_url(
            "/requests", {**window.request_params(s, s + window.bucket_ms), "user_id": user_id}
        )
        for s in window.starts
    ]
    points = data["points"]
    charts = [
        chart(
            "chart-user-requests",
            "Requests",
            window.starts,
            window.bucket_ms,
            [Series("Requests", [p["requests"] for p in points])],
            fmt=number,
            links=links,
        ),
        chart(
            "chart-user-cost",
            "Cost (USD)",
            window.starts,
            window.bucket_ms,
            [Series("Cost", [p["cost_usd"] for p in points], "s2")],
            fmt=usd,
            links=links,
        ),
    ]
    return ctx.render("user.html", user_id=user_id, window=window, charts=charts, **data)


def _load_sessions(ctx: Ctx, window: Window) -> list[dict[str, Any]]:
    return analytics.breakdown(
        ctx.engine, ctx.org_id, "session_id", window.since_ms, window.until_ms, LIST_LIMIT
    )


async def sessions_page(ctx: Ctx) -> Response:
    window = parse_window(ctx.request.query_params, "30d")
    rows = await ctx.run(_load_sessions, ctx, window)
    named = [r for r in rows if r["key"] is not None]
    named.sort(key=lambda r: -r["last_ms"])
    return ctx.render("sessions.html", window=window, rows=named)


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


async def session_page(ctx: Ctx) -> Response:
    session_id = ctx.request.path_params["session_id"]
    rows = await ctx.run(search.session_requests, ctx.engine, ctx.org_id, session_id)
    if not rows:
        return ctx.not_found("No such session in your organization.")
    tree = session_tree(rows)
    known = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    first = rows[0]["created_ms"]
    last = max(r["created_ms"] + (r["latency_ms"] or 0) for r in rows)
    titles = sorted({r["session_name"] for r in rows if r["session_name"]})
    users = sorted({r["user_id"] for r in rows if r["user_id"]})
    people = await ctx.run(names.lookup, ctx.engine, ctx.org_id, users)
    return ctx.render(
        "session.html",
        session_id=session_id,
        rows=tree,
        views={v["id"]: v for v in await ctx.run(table_rows, ctx, rows)},
        cost=sum(known) if known else None,
        unpriced=len(rows) - len(known),
        tokens=sum(r["total_tokens"] or 0 for r in rows),
        duration=last - first,
        first_ms=first,
        users=users,
        people=people,
        names=titles,
        errors=sum(1 for r in rows if r["state"] != "ok"),
    )
