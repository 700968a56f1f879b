"""The Prompts pages: every managed prompt, and one prompt with its versions and production.

``/prompts`` lists the organization's prompts with their labels (and the version each points
at), their latest version, their last change and the traffic of the last 24 hours; admins
create a prompt there. ``/prompts/<name>`` shows one: its description, its labels, the
production figures of each version side by side over the page's window (read from the raw
records by ``store.prompt_stats``, each figure a link to the records behind it), its versions
as a timeline, the diff of any two versions and the history of label moves. The forms that
change a prompt live in ``prompt_actions``; the playground is its own page.

Authors are stored as ``user:<id>`` (a dashboard account) or ``key:<id>`` (an API key) and
shown as the account's email or the key's name. Everything a prompt holds (description,
templates, commit messages, defaults) is user text: the templates escape it like any other.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import RedirectResponse, Response

from heliograph.api.prompts import DESCRIPTION_RULE, NAME, description_problem
from heliograph.store import actors, prompt_stats
from heliograph.store import prompts as prompt_store
from heliograph.store.requests import iso_ms
from heliograph.web.context import Ctx
from heliograph.web.format import path, query_url
from heliograph.web.prompt_diff import diff_versions, pick
from heliograph.web.query import Window, now_ms
from heliograph.web.sorting import TableSort

DAY_MS = 86_400_000
LIST_COLUMNS = ("name", "latest_version", "updated_at", "requests", "cost_usd")
NAME_RULE = (
    "A name is 1 to 100 characters: lowercase letters, digits, '-' and '_', starting with a "
    "letter or digit."
)


def by_user(ctx: Ctx) -> str:
    """How a change made in the dashboard records its author."""
    return f"user:{ctx.user.id}"


def _load_list(ctx: Ctx) -> list[dict[str, Any]]:
    now = now_ms()
    rows = prompt_store.list_prompts(ctx.engine, ctx.org_id)
    names = [row["name"] for row in rows]
    traffic = prompt_stats.traffic_by_prompt(ctx.engine, ctx.org_id, names, now - DAY_MS, now)
    for row in rows:
        seen = traffic.get(row["name"], {})
        row["requests"] = seen.get("requests", 0)
        row["cost_usd"] = seen.get("cost_usd", 0.0)
        row["unpriced_requests"] = seen.get("unpriced_requests", 0)
    return rows


async def list_view(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    rows = await ctx.run(_load_list, ctx)
    sorter = TableSort(ctx.request.query_params, "/prompts", LIST_COLUMNS, "name")
    context: dict[str, Any] = {"error": "", "form": {}, "deleted": ""}
    context |= extra
    if not context["deleted"]:
        context["deleted"] = ctx.request.query_params.get("deleted", "")
    return ctx.render(
        "prompts.html",
        status,
        rows=sorter.apply(rows),
        sorter=sorter,
        day_ago=iso_ms(now_ms() - DAY_MS),
        **context,
    )


async def prompts_page(ctx: Ctx) -> Response:
    return await list_view(ctx)


async def create_action(ctx: Ctx) -> Response:
    """Admins create a prompt (name and description); its versions come from the API."""
    name = ctx.form.get("name", "").strip()
    description = ctx.form.get("description", "")
    form = {"name": name, "description": description}
    if not NAME.fullmatch(name):
        return await list_view(ctx, 400, error=NAME_RULE, form=form)
    if description_problem(description):
        return await list_view(ctx, 400, error=DESCRIPTION_RULE.capitalize() + ".", form=form)
    try:
        await ctx.run(
            prompt_store.create_prompt, ctx.engine, ctx.org_id, name, description, by_user(ctx)
        )
    except prompt_store.DuplicateName:
        return await list_view(
            ctx, 409, error=f"A prompt named {name!r} already exists.", form=form
        )
    return RedirectResponse(path("prompts", name), 303)


def prompt_name(ctx: Ctx) -> str | None:
    """The prompt named in the URL, if it could be a prompt's name at all."""
    name: str = ctx.request.path_params["name"]
    return name if NAME.fullmatch(name) else None


def _load_prompt(ctx: Ctx, name: str, window: Window) -> dict[str, Any] | None:
    engine, org = ctx.engine, ctx.org_id
    prompt = prompt_store.get_prompt(engine, org, name)
    if prompt is None:
        return None
    versions = prompt_store.list_versions(engine, org, name)
    for version in versions:  # shown as text (escaped), never through |tojson's \u escapes
        version["params_json"] = orjson.dumps(version["params"] or {}).decode()
    labels = prompt_store.list_labels(engine, org, name)
    history = prompt_store.label_history(engine, org, name)
    metrics = prompt_stats.version_metrics(engine, org, name, window.since_ms, window.until_ms)
    refs = [prompt["created_by"], *(v["created_by"] for v in versions)]
    refs += [lab["updated_by"] for lab in labels] + [h["by"] for h in history]
    return {
        "prompt": prompt,
        "versions": versions,
        "labels": labels,
        "history": history,
        "metrics": metrics,
        "authors": actors.names(engine, org, refs),
    }


def _labels_of(labels: list[dict[str, Any]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for lab in labels:
        if lab["version"] is not None:
            out.setdefault(lab["version"], []).append(lab["label"])
    return out


def _delta(new: float | None, old: float | None) -> float | None:
    """The relative change from ``old`` to ``new`` (None when either is missing or 0)."""
    if new is None or old is None or old == 0:
        return None
    return (new - old) / abs(old)


METRICS = (  # (field, label, format, lower is better, drill to errors only)
    ("requests", "Requests", "count", None, False),
    ("cost_per_request_usd", "Cost per request", "usd", True, False),
    ("p50_latency_ms", "Latency p50", "ms", True, False),
    ("p95_latency_ms", "Latency p95", "ms", True, False),
    ("error_rate", "Error rate", "pct", True, True),
    ("prompt_tokens_per_request", "Tokens in per request", "per", True, False),
    ("completion_tokens_per_request", "Tokens out per request", "per", True, False),
)


def metric_table(metrics: dict[int | None, dict[str, Any]]) -> dict[str, Any]:
    """Versions with traffic, newest first, and the rows of the side-by-side table: each
    cell its value and its change from the next older version with traffic."""
    versions = sorted((v for v in metrics if v is not None), reverse=True)
    score_names = sorted({s for v in versions for s in metrics[v]["scores"]})
    rows: list[dict[str, Any]] = []

    def add(label: str, fmt: str, values: list[Any], better_low: bool | None, errors: bool) -> None:
        cells = []
        for i, value in enumerate(values):
            older = values[i + 1] if i + 1 < len(values) else None
            change = _delta(value, older) if better_low is not None else None
            good = None if change is None or change == 0 else (change < 0) == better_low
            cells.append({"value": value, "change": change, "good": good})
        rows.append({"label": label, "fmt": fmt, "cells": cells, "errors": errors})

    for key, label, fmt, better_low, errors in METRICS:
        add(label, fmt, [metrics[v][key] for v in versions], better_low, errors)
    feedback = [metrics[v]["feedback"] for v in versions]
    add("Feedback (thumbs up)", "feedback", feedback, None, False)
    for score in score_names:
        values = [metrics[v]["scores"].get(score) for v in versions]
        add(f"Score: {score}", "score", values, None, False)
    return {"versions": versions, "rows": rows}


async def prompt_page(ctx: Ctx) -> Response:
    name = prompt_name(ctx)
    window = await ctx.window()
    data = None if name is None else await ctx.run(_load_prompt, ctx, name, window)
    if name is None or data is None:
        return ctx.not_found("No such prompt in your organization.")
    q = ctx.request.query_params
    by_number = {v["version"]: v for v in data["versions"]}
    a, b, problem = pick(q, list(by_number))
    diff = None if a is None or b is None else diff_versions(by_number[a], by_number[b])
    here = path("prompts", name)

    def drill(version: int, errors: bool = False) -> str:
        params = {**window.request_params(), "prompt_name": name, "prompt_version": version}
        return query_url("/requests", {**params, "errors": "1" if errors else ""})

    return ctx.render(
        "prompt.html",
        name=name,
        here=here,
        window=window,
        labels_of=_labels_of(data["labels"]),
        table=metric_table(data["metrics"]),
        diff=diff,
        diff_problem=problem,
        pair=(a, b),
        drill=drill,
        moved=q.get("moved", ""),
        notice=q.get("saved", ""),
        **data,
    )
