"""The budgets settings page: ``/settings/budgets``, every budget of the organization with its
usage now, and (for admins) the forms that create, change and delete them.

Everyone signed in sees the table: usage is not secret inside an organization. Admins get
the forms; their posts behave like the budgets API: the same checker and messages, a key in
a scope must be one of the organization's, budgets from config.toml are shown but changed
only there, and after a change this worker reloads its budgets at once (the others on their
next refresh). Usage comes from ``budgets.status.standing``, the API's own numbers; when the
ledger cannot answer, a row says so instead of failing the page. Deleting takes two posts:
the first only asks, so a stray click or a replayed form removes nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from starlette.responses import RedirectResponse, Response

from heliograph.budgets.rules import (
    ACTIONS,
    CALENDAR,
    Budget,
    BudgetError,
    check_budget,
    config_owned,
    duplicate_name,
    unknown_key,
)
from heliograph.budgets.status import standing
from heliograph.store import budgets as budget_store
from heliograph.store import keys as key_store
from heliograph.web import budget_form as bf
from heliograph.web.context import Ctx, forbidden

HERE = "/settings/budgets"
CONFIRM_DELETE = "delete"
WARN_PERCENT = 80


def _load(ctx: Ctx) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = budget_store.list_budgets(ctx.engine, ctx.org_id)
    return rows, key_store.list_keys(ctx.engine, ctx.org_id)


async def _standing(ctx: Ctx, budget: Budget) -> dict[str, Any]:
    try:
        return await standing(budget, ctx.request.app.state.ledger)
    except Exception:  # a page that lists budgets must not fail on one budget's usage
        return {**budget.as_dict(), "spent": None, "resets_at": None, "crossed": []}


def _level(percent: float) -> str:
    if percent >= 100:
        return "over"
    return "warn" if percent > WARN_PERCENT else "ok"


def _row(budget: Budget, shown: dict[str, Any], key_names: dict[str, str]) -> dict[str, Any]:
    """One table row: the budget in words and its usage, formatted."""
    unit = budget.unit
    row: dict[str, Any] = {
        "id": budget.id,
        "name": budget.name,
        "source": budget.source,
        "scope": bf.scope_words(budget.scope.as_dict(), key_names),
        "window": bf.window_words(budget.window),
        "timezone": budget.timezone if budget.window in CALENDAR else None,
        "limit": bf.limit_words(budget),
        "rolling": budget.rolling_s is not None,
        "action": budget.action,
        "thresholds": [(t, t in shown["crossed"]) for t in budget.thresholds],
        "usage": None,
        "resets": None,
    }
    if shown.get("resets_at"):
        at = datetime.fromisoformat(shown["resets_at"])
        row["resets"] = {
            "at": at.strftime("%Y-%m-%d %H:%M UTC"),
            "iso": shown["resets_at"],
            "relative": bf.until(at.timestamp() - time.time()),
        }
    if shown.get("spent") is not None:
        percent = float(shown["used_percent"])
        row["usage"] = {
            "spent": bf.amount_words(unit, shown["spent"]),
            "reserved": bf.amount_words(unit, shown["reserved"]),
            "remaining": bf.amount_words(unit, shown["remaining"]),
            "percent": percent,
            "width": f"{max(0.0, min(percent, 100.0)):.1f}",
            "level": _level(percent),
        }
    return row


async def _page(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    rows, keys = await ctx.run(_load, ctx)
    key_names = {k["id"]: k["name"] for k in keys}
    budgets = []
    for r in rows:
        budget = Budget.from_row(r)
        budgets.append(_row(budget, await _standing(ctx, budget), key_names))
    context: dict[str, Any] = {
        "error": "",
        "form": bf.blank_form(ctx.settings.budget_timezone),
        "editing": None,
        "confirm": None,
        "keys": keys,
        "upstreams": sorted(ctx.settings.resolved_upstreams()),
        "windows": bf.WINDOWS,
        "hours": bf.HOURS,
        "kinds": bf.KIND_LABELS,
        "actions": ACTIONS,
        "default_timezone": ctx.settings.budget_timezone,
    }
    return ctx.render("budgets.html", status, budgets=budgets, **(context | extra))


async def budgets_page(ctx: Ctx) -> Response:
    return await _page(ctx)


async def _checked(ctx: Ctx) -> dict[str, Any]:
    """The form as a stored definition, or BudgetError with the API's message."""
    fields = check_budget(bf.form_doc(ctx.form), ctx.settings.budget_timezone)
    key_id = fields["scope"].get("key_id")
    if key_id is not None:
        keys = await ctx.run(key_store.list_keys, ctx.engine, ctx.org_id)
        if not any(k["id"] == key_id for k in keys):
            raise BudgetError(unknown_key(key_id))
    return fields


async def _reload(ctx: Ctx) -> None:
    """This worker enforces the change at once; the others on their next refresh."""
    await ctx.run(ctx.request.app.state.budgets.load)


async def create_action(ctx: Ctx) -> Response:
    typed = bf.kept(ctx.form)
    try:
        fields = await _checked(ctx)
    except BudgetError as exc:
        return await _page(ctx, 400, error=f"Not saved: {exc}.", form=typed)
    by = f"user:{ctx.user.id}"
    try:
        row = await ctx.run(budget_store.create_budget, ctx.engine, ctx.org_id, fields, by)
    except budget_store.DuplicateBudget:
        return await _page(ctx, 409, error=duplicate_name(fields["name"]), form=typed)
    await _reload(ctx)
    return RedirectResponse(f"{HERE}#budget-{row['id']}", 303)


async def _budget(ctx: Ctx) -> Budget | None:
    budget_id = ctx.request.path_params["budget_id"]
    row = await ctx.run(budget_store.get_budget, ctx.engine, ctx.org_id, budget_id)
    return None if row is None else Budget.from_row(row)


def _missing(ctx: Ctx) -> Response:
    return ctx.not_found("No such budget in this organization.")


async def edit_page(ctx: Ctx) -> Response:
    if not ctx.user.is_admin:
        return forbidden(ctx.ui, ctx.user, "Only admins can change budgets; you are a viewer.")
    budget = await _budget(ctx)
    if budget is None:
        return _missing(ctx)
    if budget.source == "config":
        return await _page(ctx, 409, error=config_owned(budget.name))
    editing = {"id": budget.id, "name": budget.name}
    return await _page(ctx, editing=editing, form=bf.form_of(budget))


async def update_action(ctx: Ctx) -> Response:
    """Replace the definition, like the API's PUT; the usage stays."""
    budget = await _budget(ctx)
    if budget is None:
        return _missing(ctx)
    if budget.source == "config":
        return await _page(ctx, 409, error=config_owned(budget.name))
    editing = {"id": budget.id, "name": budget.name}
    typed = bf.kept(ctx.form)
    try:
        fields = await _checked(ctx)
    except BudgetError as exc:
        return await _page(ctx, 400, error=f"Not saved: {exc}.", form=typed, editing=editing)
    try:
        row = await ctx.run(budget_store.update_budget, ctx.engine, ctx.org_id, budget.id, fields)
    except budget_store.DuplicateBudget:
        error = duplicate_name(fields["name"])
        return await _page(ctx, 409, error=error, form=typed, editing=editing)
    if row is None:
        return _missing(ctx)
    await _reload(ctx)
    return RedirectResponse(f"{HERE}#budget-{budget.id}", 303)


async def delete_action(ctx: Ctx) -> Response:
    """Step one asks; step two (``confirm=delete``) deletes the budget and its usage."""
    budget = await _budget(ctx)
    if budget is None:
        return _missing(ctx)
    if budget.source == "config":
        return await _page(ctx, 409, error=config_owned(budget.name))
    if ctx.form.get("confirm") != CONFIRM_DELETE:
        confirm = {"id": budget.id, "name": budget.name, "limit": bf.limit_words(budget)}
        return await _page(ctx, confirm=confirm)
    await ctx.run(budget_store.delete_budget, ctx.engine, ctx.org_id, budget.id)
    await _reload(ctx)
    return RedirectResponse(HERE, 303)
