"""The human review queue: outputs one by one, scored with the keyboard.

``/review?experiment=<id>`` steps through an experiment's done cells in matrix order;
``/review?<the Requests page's filters>`` through the matching requests (newest first, at
most ``MAX_REQUESTS``; free-text search cannot select them, as for adding to a dataset).
Each shows the input, the output and the expected output as escaped text; ``review.js``
binds 1-5, p/f (pass/fail), j/k (next/previous) and Enter (save).

A score is stored through the existing scores and feedback of the output's request record:
a ``human`` score (pass 1, fail 0, or the number) and, for pass/fail, the thumbs up or down.
For an experiment cell it is also the cell's ``human`` evaluator score (with the comment as
its reason), so the matrix and the summary show it. Request records have no comment field,
so a comment on a plain request is not kept; the page says so.

Saving is an admin action, like every change in the dashboard: viewers are read-only there,
as read keys cannot post scores through the API (that takes the application's write key).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response

from heliograph.api.experiment_results import EXP_ID
from heliograph.evals.dataset_items import ItemError, item_from_record
from heliograph.store import dataset_sources, feedback
from heliograph.store import experiment_results as results_store
from heliograph.web.context import Ctx
from heliograph.web.format import path, query_url
from heliograph.web.query import parse_request_query

MAX_REQUESTS = 500
MAX_COMMENT = 4000
SCORES = ("pass", "fail", "1", "2", "3", "4", "5")
SOURCE_KEYS = ("experiment", "i")


def _index(value: str | None) -> int:
    if value and value.isascii() and value.isdigit() and len(value) < 9:
        return int(value)
    return 0


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _experiment_entry(ctx: Ctx, exp_id: str, i: int) -> dict[str, Any] | None:
    experiment = results_store.get_experiment(ctx.engine, ctx.org_id, exp_id)
    if experiment is None:
        return None
    cells = results_store.review_cells(ctx.engine, ctx.org_id, exp_id, None, 1, i)
    entry: dict[str, Any] = {
        "title": experiment["name"],
        "back": path("experiments", exp_id),
        "total": experiment["cells_done"],
        "item": None,
    }
    if cells:
        c = cells[0]
        human = c["scores"].get(results_store.HUMAN) or {}
        entry["item"] = {
            "cell_id": c["id"],
            "request_id": c["request_id"],
            "variant": c["variant_name"],
            "position": c["item_position"],
            "input": _text(c["inputs"]),
            "output": c["output"] or "",
            "expected": c["expected"] or "",
            "current": _current(human.get("value"), human.get("passed")),
            "comment": human.get("reason") or "",
            "scores": {k: v for k, v in c["scores"].items() if k != results_store.HUMAN},
        }
    return entry


def _current(value: float | None, passed: bool | None) -> str:
    if passed is not None:
        return "pass" if passed else "fail"
    if value is not None and float(value).is_integer() and 1 <= value <= 5:
        return str(int(value))
    return ""


def _request_entry(ctx: Ctx, q: QueryParams, i: int) -> dict[str, Any]:
    rq = parse_request_query(q)
    entry: dict[str, Any] = {
        "title": "Requests matching the filter",
        "back": query_url("/requests", [(k, v) for k, v in q.multi_items() if k != "i"]),
        "total": 0,
        "item": None,
        "error": "",
    }
    if rq.filter.text or rq.errors:
        entry["error"] = "Free-text search and invalid filters cannot select requests to review."
        return entry
    ids = dataset_sources.matching_ids(ctx.engine, ctx.org_id, rq.filter, MAX_REQUESTS)
    entry["total"] = len(ids)
    if i >= len(ids):
        return entry
    record = next(iter(dataset_sources.records_with_bodies(ctx.engine, ctx.org_id, [ids[i]])), None)
    if record is None:
        return entry
    try:
        item = item_from_record(record)
        inputs, output = _text(item.inputs), item.expected or ""
    except ItemError:
        inputs, output = "", record.get("error") or ""
    with ctx.engine.connect() as conn:
        notes = feedback.annotations_for(conn, ctx.org_id, [ids[i]])[ids[i]]
    human = notes["scores"].get(results_store.HUMAN)
    entry["item"] = {
        "cell_id": "",
        "request_id": ids[i],
        "variant": record.get("model") or "",
        "position": i,
        "input": inputs,
        "output": output,
        "expected": "",
        "current": _current(human, notes["feedback"] if human in (0, 1) else None),
        "comment": "",
        "scores": {},
    }
    return entry


def _source(q: QueryParams) -> list[tuple[str, str]]:
    """The query that names the queue (without the position)."""
    return [(k, v) for k, v in q.multi_items() if k != "i"]


async def review_page(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    i = _index(q.get("i"))
    exp_id = q.get("experiment", "")
    if exp_id:
        if not EXP_ID.fullmatch(exp_id):
            return ctx.not_found("No such experiment in your organization.")
        entry = await ctx.run(_experiment_entry, ctx, exp_id, i)
        if entry is None:
            return ctx.not_found("No such experiment in your organization.")
        entry["error"] = ""
    elif not list(q.keys() - {"i"}):
        rows = await ctx.run(results_store.list_experiments, ctx.engine, ctx.org_id)
        return ctx.render("review.html", choose=True, experiments=rows)
    else:
        entry = await ctx.run(_request_entry, ctx, q, i)
    source = _source(q)
    return ctx.render(
        "review.html",
        choose=False,
        entry=entry,
        i=i,
        source=source,
        query=str(QueryParams(source)),
        prev=query_url("/review", [*source, ("i", str(i - 1))]) if i > 0 else "",
        next=query_url("/review", [*source, ("i", str(i + 1))]) if i + 1 < entry["total"] else "",
        is_experiment=bool(exp_id),
        saved=q.get("saved", ""),
    )


def _score(value: str) -> tuple[float, bool | None] | None:
    if value not in SCORES:
        return None
    if value in ("pass", "fail"):
        return (1.0 if value == "pass" else 0.0), value == "pass"
    return float(value), None


async def save_action(ctx: Ctx) -> Response:
    """Store one score (and comment) and go on to the next output."""
    form = ctx.form
    got = _score(form.get("score", ""))
    comment = form.get("comment", "")[:MAX_COMMENT]
    source = QueryParams(form.get("query", ""))
    i = _index(form.get("i"))
    if got is None:
        message = "Choose a score (pass, fail or 1 to 5) before saving."
        return ctx.render("error.html", 400, title="Not saved", message=message)
    value, passed = got
    exp_id = source.get("experiment", "")
    rid = form.get("request_id", "")
    if exp_id:
        cell = await ctx.run(
            results_store.set_human_score,
            ctx.engine,
            ctx.org_id,
            exp_id,
            form.get("cell_id", ""),
            value,
            passed,
            comment,
        )
        if cell is None:
            return ctx.not_found("No such output in this experiment.")
        rid = cell["request_id"]
    # The record (an experiment cell's call, or a request) gets the score and the thumb.
    found = await ctx.run(
        feedback.set_scores, ctx.engine, ctx.org_id, rid, {results_store.HUMAN: value}
    )
    if not found and not exp_id:
        return ctx.not_found("No such request in your organization.")
    if found and passed is not None:
        await ctx.run(feedback.set_feedback, ctx.engine, ctx.org_id, rid, passed)
    return RedirectResponse(
        query_url("/review", [*source.multi_items(), ("i", str(i + 1)), ("saved", str(i))]),
        303,
    )
