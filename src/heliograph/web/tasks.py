"""The Tasks page: what Open WebUI's background tasks (titles, tags, follow-ups...) cost.

Reads ``store.tasks.report`` (the task rollup for whole hours, raw rows at the edges): the
tasks' share of spend, then per task, per user and per model, every row linking to the
Requests page filtered to what it counts (``task=``, with ``user_id=`` or ``model=``). The
analytics API gives the same figures (``dimension=task``, ``task=``).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from heliograph.store import tasks
from heliograph.web.context import Ctx
from heliograph.web.format import query_url
from heliograph.web.query import parse_window


async def tasks_page(ctx: Ctx) -> Response:
    window = parse_window(ctx.request.query_params, "30d")
    report = await ctx.run(tasks.report, ctx.engine, ctx.org_id, window.since_ms, window.until_ms)
    people = {r["key"]: r["person"] for r in report["by_user"] if r["key"] and r["person"]}

    def drill(**params: Any) -> str:
        return query_url("/requests", {**window.request_params(), **params})

    return ctx.render("tasks.html", window=window, people=people, drill=drill, **report)
