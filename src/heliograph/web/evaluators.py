"""The saved evaluators page: ``/evaluators``.

Everyone signed in sees the organization's saved evaluators (name, kind, a one-line summary
of the config, description), which experiments name in their evaluator lists. Admins create,
edit and delete them through a JSON spec box checked by ``evals.specs.parse_spec`` (the same
check as ``/api/v1/evaluators``); a mistake re-shows the box with the text kept and the field
at fault named. Editing or deleting one never changes an experiment: experiments copy specs.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import RedirectResponse, Response

from heliograph.evals.specs import KINDS, NAME, SpecError, parse_spec
from heliograph.store import evaluators as store
from heliograph.web.context import Ctx
from heliograph.web.prompts import by_user

HERE = "/evaluators"
EXAMPLE = '{"name": "mentions-refund", "kind": "contains", "config": {"values": ["refund"]}}'
SUMMARY_CHARS = 160


def summary(config: dict[str, Any]) -> str:
    """The config on one line (``key=value, ...``), cut at ``SUMMARY_CHARS``."""
    parts = []
    for key, value in config.items():
        if value is None or value == [] or value == {}:
            continue
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _rows(ctx: Ctx) -> list[dict[str, Any]]:
    rows = store.list_evaluators(ctx.engine, ctx.org_id)
    for row in rows:
        spec = row["spec"]
        row["kind"] = spec["kind"]
        row["description"] = spec.get("description", "")
        row["summary"] = summary(spec.get("config") or {})
        row["spec_text"] = orjson.dumps(spec, option=orjson.OPT_INDENT_2).decode()
    return rows


async def _page(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    rows = await ctx.run(_rows, ctx)
    context: dict[str, Any] = {"error": "", "field": "", "editing": "", "form": {}}
    context |= {"example": EXAMPLE, "kinds": list(KINDS)} | extra
    return ctx.render("evaluators.html", status, rows=rows, **context)


async def evaluators_page(ctx: Ctx) -> Response:
    return await _page(ctx)


def _spec(text: str, name: str | None = None) -> dict[str, Any]:
    """The spec box read and checked; SpecError names the field at fault."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SpecError("spec", f"not valid JSON ({exc})") from exc
    if name is not None and isinstance(doc, dict):
        doc.setdefault("name", name)
        if doc["name"] != name:
            raise SpecError("name", f"must stay {name!r} (names do not change)")
    return parse_spec(doc).to_dict()


async def create_action(ctx: Ctx) -> Response:
    text = ctx.form.get("spec", "")
    form = {"spec": text}
    try:
        spec = _spec(text)
        await ctx.run(
            store.create_evaluator, ctx.engine, ctx.org_id, spec["name"], spec, by_user(ctx)
        )
    except SpecError as exc:
        return await _page(ctx, 400, error=str(exc), field=exc.field, form=form)
    except store.DuplicateName:
        error = f"An evaluator named {spec['name']!r} already exists."
        return await _page(ctx, 409, error=error, field="name", form=form)
    return RedirectResponse(HERE, 303)


def _name(ctx: Ctx) -> str | None:
    name: str = ctx.request.path_params["name"]
    return name if NAME.fullmatch(name) else None


async def update_action(ctx: Ctx) -> Response:
    name = _name(ctx)
    if name is None or await ctx.run(store.get_evaluator, ctx.engine, ctx.org_id, name) is None:
        return ctx.not_found("No such evaluator in your organization.")
    text = ctx.form.get("spec", "")
    try:
        spec = _spec(text, name)
    except SpecError as exc:
        form = {"spec": text}
        return await _page(ctx, 400, error=str(exc), field=exc.field, editing=name, form=form)
    row = await ctx.run(store.update_evaluator, ctx.engine, ctx.org_id, name, spec)
    if row is None:
        return ctx.not_found("No such evaluator in your organization.")
    return RedirectResponse(HERE, 303)


async def delete_action(ctx: Ctx) -> Response:
    name = _name(ctx)
    if name is None or not await ctx.run(store.delete_evaluator, ctx.engine, ctx.org_id, name):
        return ctx.not_found("No such evaluator in your organization.")
    return RedirectResponse(HERE, 303)
