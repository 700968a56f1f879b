"""The retention settings page: ``/settings/retention``, the organization's policy in force,
what a pass would delete now, and (for admins) the form that changes the override.

Everyone signed in reads it; admins post the form, checked like the API's PUT (the same
checker and messages). An empty field means "the server default", 0 means "never".
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response

from heliograph.retention.policy import KINDS, PolicyError, check_override, effective
from heliograph.retention.run import due
from heliograph.retention.view import policy_view
from heliograph.store import retention as retention_store
from heliograph.web.context import Ctx

HERE = "/settings/retention"
LABELS = {
    "bodies_days": "Bodies (prompt and response text)",
    "records_days": "Records (with properties, feedback, scores, spans)",
    "rollups_days": "Rollups (dashboard totals)",
}


def _load(ctx: Ctx) -> tuple[dict[str, Any], tuple[int, int]]:
    override = retention_store.get_override(ctx.engine, ctx.org_id)
    policy = effective(ctx.settings, override)
    return policy_view(ctx.settings, override), due(
        ctx.engine, policy, ctx.org_id, retention_store.now_ms()
    )


def _form_of(view: dict[str, Any]) -> dict[str, str]:
    return {k: "" if view["override"][k] is None else str(view["override"][k]) for k in KINDS}


async def _page(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    view, (records, bodies) = await ctx.run(_load, ctx)
    rows = [
        {
            "kind": kind,
            "label": LABELS[kind],
            "days": view[kind],
            "source": view["sources"][kind],
            "default": view["defaults"][kind],
        }
        for kind in KINDS
    ]
    context: dict[str, Any] = {"error": "", "form": _form_of(view), "saved": False}
    return ctx.render(
        "retention.html",
        status,
        rows=rows,
        view=view,
        due={"records": records, "bodies": bodies},
        interval_s=ctx.settings.retention_interval_s,
        **(context | extra),
    )


async def retention_page(ctx: Ctx) -> Response:
    return await _page(ctx, saved=ctx.request.query_params.get("saved") == "1")


def _doc(form: dict[str, str]) -> dict[str, Any]:
    """The form as the API's body: empty is null, a number is a number, else left as text
    (so the checker names the field)."""
    doc: dict[str, Any] = {}
    for kind in KINDS:
        text = form.get(kind, "").strip()
        doc[kind] = None if not text else int(text) if text.isdigit() else text
    return doc


async def save_action(ctx: Ctx) -> Response:
    typed = {k: ctx.form.get(k, "") for k in KINDS}
    try:
        days = check_override(ctx.settings, _doc(ctx.form))
    except PolicyError as exc:
        return await _page(ctx, 400, error=f"Not saved: {exc}.", form=typed)
    await ctx.run(retention_store.set_override, ctx.engine, ctx.org_id, days, f"user:{ctx.user.id}")
    return RedirectResponse(f"{HERE}?saved=1", 303)
