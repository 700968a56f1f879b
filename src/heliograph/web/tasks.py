"""The Tasks page: what Open WebUI's background tasks (titles, tags, follow-ups...) cost.

Reads ``store.tasks.report`` (the task rollup for whole hours, raw rows at the edges): the
tasks' share of spend, then per task, per user and per model, every row linking to the
Requests page filtered to what it counts (``task=``, with ``user_id=`` or ``model=``). The
analytics API gives the same figures (``dimension=task``, ``task=``). Each of the three
tables sorts by any numeric column, with its own URL parameter (``tsort``, ``msort``,
``usort``) so sorting one keeps the others' order.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from heliograph.store import tasks
from heliograph.web.context import Ctx
from heliograph.web.format import query_url
from heliograph.web.sorting import Key, TableSort

PARAMS = ("tsort", "msort", "usort")


def _at(*names: str) -> Key:
    """A sort key reading a nested figure (``tasks.cost_usd``, ``share.cost``)."""

    def get(row: Any) -> Any:
        for name in names:
            row = row.get(name) if isinstance(row, dict) else None
        return row

    return get


SHARED: dict[str, Key] = {
    "requests": _at("tasks", "requests"),
    "tokens": _at("tasks", "total_tokens"),
    "cost": _at("tasks", "cost_usd"),
    "share": _at("share", "cost"),
}
TASK_COLUMNS: dict[str, Key] = {
    "requests": _at("requests"),
    "tokens": _at("total_tokens"),
    "cost": _at("cost_usd"),
    "share": _at("share", "cost"),
}
USER_COLUMNS: dict[str, Key] = {**SHARED, "all_cost": _at("all", "cost_usd")}


async def tasks_page(ctx: Ctx) -> Response:
    window = await ctx.window()
    report = await ctx.run(tasks.report, ctx.engine, ctx.org_id, window.since_ms, window.until_ms)
    people = {r["key"]: r["person"] for r in report["by_user"] if r["key"] and r["person"]}
    q = ctx.request.query_params
    sorts: dict[str, Any] = {
        "task_sort": TableSort(q, "/tasks", TASK_COLUMNS, "-cost", param="tsort"),
        "model_sort": TableSort(q, "/tasks", SHARED, "-cost", param="msort"),
        "user_sort": TableSort(q, "/tasks", USER_COLUMNS, "-cost", param="usort"),
    }
    by_task = sorts["task_sort"].apply(report["by_task"])
    # the chats row is the comparison, not a task: it stays at the bottom whatever the order
    report["by_task"] = [r for r in by_task if r["key"] is not None] + [
        r for r in by_task if r["key"] is None
    ]
    report["by_model"] = sorts["model_sort"].apply(report["by_model"])
    report["by_user"] = sorts["user_sort"].apply(report["by_user"])

    def drill(**params: Any) -> str:
        return query_url("/requests", {**window.request_params(), **params})

    extra = {k: q[k] for k in PARAMS if q.get(k)}
    return ctx.render(
        "tasks.html",
        window=window,
        people=people,
        drill=drill,
        extra=extra,
        **sorts,
        **report,
    )
