"""The Groups page: usage per Open WebUI user group over a window.

A group's figures are the sum of its *current* members' (the end-user directory's latest
groups of each user, read from the per-user rollup), so a user who joins a group brings their
history with them, and a user in two groups counts in both. The analytics API gives the same
rows (``dimension=user_group``). Each group links to the Users page narrowed to its members.
The table sorts by any numeric column (``?sort=-requests``); most spend first by default.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from heliograph.store import analytics, end_users
from heliograph.web.context import Ctx
from heliograph.web.query import Window
from heliograph.web.sorting import Key, TableSort

MAX_GROUPS = 1000


def _usage(name: str) -> Key:
    """A sort key reading the group's usage (a group without requests counts zero)."""
    return lambda g: (g["usage"] or {}).get(name, 0)


COLUMNS: dict[str, Key] = {
    "members": lambda g: g["members"],
    "requests": _usage("requests"),
    "tokens": _usage("total_tokens"),
    "cost": _usage("cost_usd"),
    "last": lambda g: (g["usage"] or {}).get("last_ms"),
}


def _load(ctx: Ctx, window: Window) -> list[dict[str, Any]]:
    engine, org = ctx.engine, ctx.org_id
    members = end_users.group_members(engine, org)
    rows = analytics.breakdown(
        engine, org, analytics.GROUP, window.since_ms, window.until_ms, MAX_GROUPS
    )
    found = {r["key"]: r for r in rows}
    out: list[dict[str, Any]] = [
        {"name": name, "members": len(set(users)), "usage": found.get(name)}
        for name, users in members.items()
    ]
    out.sort(key=_order)
    return out[:MAX_GROUPS]


def _order(group: dict[str, Any]) -> tuple[float, int, str]:
    """Most spend first, then most requests, then by name."""
    usage = group["usage"] or {"cost_usd": 0.0, "requests": 0}
    return -usage["cost_usd"], -usage["requests"], group["name"]


async def groups_page(ctx: Ctx) -> Response:
    window = await ctx.window()
    groups = await ctx.run(_load, ctx, window)
    sorter = TableSort(ctx.request.query_params, "/groups", COLUMNS, "-cost")
    extra = {"sort": sorter.value} if sorter.value != sorter.default else {}
    return ctx.render(
        "groups.html", window=window, groups=sorter.apply(groups), sorter=sorter, extra=extra
    )
