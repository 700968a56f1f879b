"""The online evaluation settings page: ``/settings/evaluations``.

Everyone signed in sees the rules (evaluator, filter, sample rate, whether on) and what each
has done (queued, scored, errors, the most recent error); admins create, change and delete
them. The evaluator is a JSON box checked by ``parse_spec`` (every kind, the same checks the
API makes) and the filter is the Requests page's URL spelling (``model=gpt-4o&property.team=
red``, the part after ``?`` of a Requests page URL), checked by the same parser; a mistake
re-shows the form with the field named and the text kept.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.responses import RedirectResponse, Response

from heliograph.evals.online import RuleError, check_rule
from heliograph.evals.specs import KINDS
from heliograph.store import online_eval as store
from heliograph.web.context import Ctx

HERE = "/settings/evaluations"
EXAMPLE = '{"name": "mentions-refund", "kind": "contains", "config": {"values": ["refund"]}}'
MAX_FILTER_CHARS = 4000


def filter_text(params: dict[str, str]) -> str:
    """A rule's filter in the Requests page's URL spelling."""
    return urlencode(sorted(params.items()))


def _load(ctx: Ctx) -> list[dict[str, Any]]:
    rules = store.list_rules(ctx.engine, ctx.org_id)
    counts = store.status_counts(ctx.engine, ctx.org_id)
    for rule in rules:
        found = counts.get(rule["id"], {})
        rule["counts"] = {s: found.get(s, 0) for s in store.STATUSES}
        rule["filter_text"] = filter_text(rule["filter"] or {})
        rule["spec_text"] = orjson.dumps(rule["evaluator"]).decode()
        rule["requests_url"] = "/requests?" + rule["filter_text"]
        status = store.rule_status(ctx.engine, ctx.org_id, rule["id"])
        rule["recent_errors"] = status["recent_errors"] if status else []
    return rules


async def _page(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    rules = await ctx.run(_load, ctx)
    context: dict[str, Any] = {"error": "", "form": {}, "example": EXAMPLE, "kinds": list(KINDS)}
    context |= extra
    return ctx.render("evaluations.html", status, rules=rules, **context)


async def evaluations_page(ctx: Ctx) -> Response:
    return await _page(ctx)


def _doc(ctx: Ctx, *, partial: bool) -> dict[str, Any]:
    """The form as an API body; RuleError for what cannot be read at all."""
    form = ctx.form
    doc: dict[str, Any] = {}
    if "evaluator" in form or not partial:
        try:
            doc["evaluator"] = orjson.loads(form.get("evaluator", ""))
        except orjson.JSONDecodeError as exc:
            raise RuleError("evaluator", f"is not JSON ({exc})") from exc
    if form.get("name", "").strip():
        doc["name"] = form["name"].strip()
    if "filter" in form or not partial:
        text = form.get("filter", "").strip().lstrip("?")
        if len(text) > MAX_FILTER_CHARS:
            raise RuleError("filter", f"must be at most {MAX_FILTER_CHARS} characters")
        pairs = parse_qsl(text, keep_blank_values=False)
        names = [n for n, _ in pairs]
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated is not None:
            raise RuleError(f"filter.{repeated}", "given twice; a rule takes each once")
        doc["filter"] = dict(pairs)
    if "sample_rate" in form or not partial:
        try:
            doc["sample_rate"] = float(form.get("sample_rate", ""))
        except ValueError as exc:
            raise RuleError("sample_rate", "must be a number greater than 0 and at most 1") from exc
    if "enabled" in form or not partial or form.get("edit") == "1":  # an unticked box is absent
        doc["enabled"] = form.get("enabled") == "1"
    return doc


async def create_action(ctx: Ctx) -> Response:
    form = dict(ctx.form)
    try:
        rule = check_rule(_doc(ctx, partial=False))
        await ctx.run(
            lambda: store.create_rule(
                ctx.engine,
                ctx.org_id,
                name=rule["name"],
                evaluator=rule["evaluator"],
                filter_params=rule["filter"],
                sample_rate=rule["sample_rate"],
                enabled=rule["enabled"],
                created_by=f"user:{ctx.user.id}",
            )
        )
    except RuleError as exc:
        return await _page(ctx, 400, error=f"Not saved: {exc}", form=form)
    except store.DuplicateName:
        error = f"Not saved: a rule named {rule['name']!r} exists."
        return await _page(ctx, 409, error=error, form=form)
    return RedirectResponse(HERE, 303)


async def update_action(ctx: Ctx) -> Response:
    rule_id = ctx.request.path_params["rule_id"]
    try:
        changes = check_rule(_doc(ctx, partial=True), partial=True)
        row = await ctx.run(store.update_rule, ctx.engine, ctx.org_id, rule_id, changes)
    except RuleError as exc:
        return await _page(ctx, 400, error=f"Not saved: {exc}")
    except store.DuplicateName:
        return await _page(ctx, 409, error="Not saved: another rule has this name.")
    if row is None:
        return ctx.not_found("No such rule in your organization.")
    return RedirectResponse(HERE, 303)


async def delete_action(ctx: Ctx) -> Response:
    rule_id = ctx.request.path_params["rule_id"]
    if not await ctx.run(store.delete_rule, ctx.engine, ctx.org_id, rule_id):
        return ctx.not_found("No such rule in your organization.")
    return RedirectResponse(HERE, 303)
