"""Users: the list with usage, and one user's page (cost per day, per model, latest requests).

Users here are the ones named by traffic (``Helicone-User-Id``, Open WebUI's user), not
dashboard accounts. Users are shown by name and email from the end-user directory (one
lookup per page), linked by id; the list narrows to a group's current members with
``?group=``. Every table sorts by any numeric column with the sort in the URL.

Latency per user: the per-user rollups keep sums, not histograms, so the list shows the
average latency (complete for any range) and says so; a user's page reads that user's raw
rows for p50 and p95 per model (``store.sessions.user_models``), and falls back to the
labelled average when there are too few requests for a p95 to mean anything.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from heliograph.store import analytics, end_users, search, sessions
from heliograph.store.selection import RequestFilter
from heliograph.store.stats import Stats
from heliograph.web import names
from heliograph.web.charts import Series, chart
from heliograph.web.context import Ctx
from heliograph.web.format import number, path, query_url, usd
from heliograph.web.query import DAY, Window, zone_offset_ms
from heliograph.web.request_pages import table_rows
from heliograph.web.sessions import session_tree as session_tree  # moved; old import path
from heliograph.web.sorting import TableSort

LIST_LIMIT = 500
USER_REQUESTS = 25
MAX_GROUP = 255
MIN_DAYS = 3  # fewer days in the range: the cost chart is per bucket, not per day
MIN_FOR_P95 = 20  # fewer latencies than this: the average, labelled, instead of a p95
PERSON = ("name", "email", "role", "groups", "identity")
USER_COLUMNS = ("requests", "total_tokens", "cost_usd", "avg_latency_ms", "error_rate", "last_ms")
MODEL_COLUMNS = ("requests", "total_tokens", "cost_usd", "p50_latency_ms", "avg_latency_ms")
DAY_COLUMNS = ("start_ms", "requests", "total_tokens", "cost_usd")


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
    window = await ctx.window()
    q = ctx.request.query_params
    group = q.get("group", "").strip()[:MAX_GROUP]
    data = await ctx.run(_load_users, ctx, window, group)
    sorter = TableSort(q, "/users", USER_COLUMNS, "-requests")
    named = sorter.apply([r for r in data["rows"] if r["key"] is not None])
    anonymous = next((r for r in data["rows"] if r["key"] is None), None)
    extra = {k: v for k, v in (("group", group), ("sort", q.get("sort", ""))) if v}
    return ctx.render(
        "users.html",
        window=window,
        rows=named,
        anonymous=anonymous,
        top=data["top"],
        people=data["people"],
        group=group,
        idle=data["idle"],
        sorter=sorter,
        extra=extra,
    )


def day_window(window: Window) -> tuple[int, int]:
    """The window widened to whole days of the page's timezone (at its start's offset)."""
    offset = zone_offset_ms(window.tz, window.since_ms)
    start = (window.since_ms + offset) // DAY * DAY - offset
    end = -(-(window.until_ms + offset) // DAY) * DAY - offset
    return start, end


def _models(found: dict[str | None, Stats]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-model rows and the user's overall figures (percentiles from merged histograms)."""
    total = Stats()
    rows = []
    for model, stats in found.items():
        total.merge(stats)
        rows.append({"model": model, **stats.to_api(), "latencies": stats.latency_n})
    rows.sort(key=lambda r: (-r["requests"], str(r["model"])))
    return rows, {**total.to_api(), "latencies": total.latency_n}


def _load_user(ctx: Ctx, window: Window, user_id: str) -> dict[str, Any]:
    engine, org, since, until = ctx.engine, ctx.org_id, window.since_ms, window.until_ms
    scope = {"dimension": "user_id", "value": user_id}
    page = search.search_requests(engine, org, RequestFilter(user_id=user_id), USER_REQUESTS)
    day_since, day_until = day_window(window)
    models, latency = _models(sessions.user_models(engine, org, user_id, since, until))
    return {
        "person": {
            **dict.fromkeys(PERSON),
            **names.lookup(engine, org, [user_id]).get(user_id, {}),
        },
        "unverified": sum(1 for r in page.rows if r.get("identity") == "unverified"),
        "totals": analytics.scoped_summary(engine, org, since, until, **scope),
        "latency": latency,
        "points": analytics.scoped_timeseries(engine, org, since, until, window.bucket_ms, **scope),
        "days": analytics.scoped_timeseries(engine, org, day_since, day_until, DAY, **scope),
        "models": models,
        "requests": table_rows(ctx, page.rows),
        "more": page.next_cursor is not None,
    }


async def user_page(ctx: Ctx) -> Response:
    user_id = ctx.request.path_params["user_id"]
    window = await ctx.window()
    data = await ctx.run(_load_user, ctx, window, user_id)
    if not data["requests"]:
        return ctx.not_found("No requests from this user in your organization.")
    q = ctx.request.query_params
    here = path("users", user_id)
    models = TableSort(q, here, MODEL_COLUMNS, "-requests", param="msort")
    days = TableSort(q, here, DAY_COLUMNS, "-start_ms", param="dsort")
    return ctx.render(
        "user.html",
        user_id=user_id,
        window=window,
        charts=_user_charts(window, user_id, data),
        model_sort=models,
        day_sort=days,
        model_rows=models.apply(data["models"]),
        day_rows=days.apply([d for d in data["days"] if d["requests"]]),
        show_p95=data["latency"]["latencies"] >= MIN_FOR_P95,
        extra={k: q[k] for k in ("msort", "dsort") if q.get(k)},
        **data,
    )


def _user_charts(window: Window, user_id: str, data: dict[str, Any]) -> list[Any]:
    def drill(start: int, bucket: int) -> str:
        return query_url(
            "/requests", {**window.request_params(start, start + bucket), "user_id": user_id}
        )

    links = [drill(s, window.bucket_ms) for s in window.starts]
    points, days = data["points"], data["days"]
    day_starts = [d["start_ms"] for d in days]
    if len(days) >= MIN_DAYS:
        cost = chart(
            "chart-user-cost-per-day",
            "Cost per day (USD)",
            day_starts,
            DAY,
            [Series("Cost", [d["cost_usd"] for d in days], "s2")],
            fmt=usd,
            links=[drill(s, DAY) for s in day_starts],
            tz=window.tz,
        )
    else:  # a day or two would be two bars: the cost over the window's buckets instead
        cost = chart(
            "chart-user-cost",
            "Cost (USD)",
            window.starts,
            window.bucket_ms,
            [Series("Cost", [p["cost_usd"] for p in points], "s2")],
            fmt=usd,
            links=links,
            tz=window.tz,
        )
    return [
        chart(
            "chart-user-requests",
            "Requests",
            window.starts,
            window.bucket_ms,
            [Series("Requests", [p["requests"] for p in points])],
            fmt=number,
            links=links,
            tz=window.tz,
        ),
        cost,
    ]
