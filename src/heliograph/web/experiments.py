"""The Experiments pages: one experiment's results, a diff, promotion.

``/experiments`` (the list and its New experiment form) is ``web.experiment_new``.
``/experiments/<id>``
shows the summary per variant with each variant's difference from the baseline (the first
variant) and its bootstrap interval in plain words, then the matrix a page of items at a time,
outputs side by side as escaped text. While the experiment runs, ``experiments.js`` polls
``/experiments/<id>/progress.json`` and reloads the page when it finishes. The page and the
results API read the same document (``evals.results``).

Promotion moves a prompt label, which changes what production runs: like a label move on a
prompt's page it takes two steps (the first POST shows what would move; the second carries
``confirm=promote``), admins only, through ``store.prompts.move_label`` as ``user:<id>``.

The diff of two outputs is ``web.word_diff.word_diff``: Replay's word diff with a bound on
the work, since any viewer may ask for the diff of two long outputs.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, RedirectResponse, Response

from heliograph.api.experiment_results import (
    EXP_ID,
    PromoteError,
    export_response,
    promotion_target,
)
from heliograph.api.prompts import LABEL
from heliograph.evals import results as results_doc
from heliograph.store import experiment_results as results_store
from heliograph.store import prompts as prompt_store
from heliograph.web.context import Ctx
from heliograph.web.format import path, query_url
from heliograph.web.prompts import by_user
from heliograph.web.word_diff import Budget, word_diff

PAGE = 50
CONFIRM = "promote"
RUNNING = ("queued", "running")


def exp_id_of(ctx: Ctx) -> str | None:
    value: str = ctx.request.path_params["exp_id"]
    return value if EXP_ID.fullmatch(value) else None


def missing(ctx: Ctx) -> Response:
    return ctx.not_found("No such experiment in your organization.")


def progress(row: dict[str, Any]) -> dict[str, Any]:
    total = row["cells_total"] or 0
    finished = (row["cells_done"] or 0) + (row["cells_failed"] or 0)
    return {
        "status": row["status"],
        "total": total,
        "done": row["cells_done"] or 0,
        "failed": row["cells_failed"] or 0,
        "percent": round(100 * finished / total) if total else 0,
        "spent_nusd": row["spent_nusd"] or 0,
        "running": row["status"] in RUNNING,
    }


def _after(value: str | None) -> int | None:
    if value and value.isascii() and value.lstrip("-").isdigit() and len(value) < 11:
        return int(value)
    return None


async def experiment_page(ctx: Ctx) -> Response:
    exp_id = exp_id_of(ctx)
    if exp_id is None:
        return missing(ctx)
    cache = results_doc.cache_of(ctx.request.app.state)
    doc = await ctx.run(results_doc.load, ctx.engine, ctx.org_id, exp_id, cache, True)
    if doc is None:
        return missing(ctx)
    after = _after(ctx.request.query_params.get("after"))
    rows, next_after = await ctx.run(
        results_store.matrix, ctx.engine, ctx.org_id, exp_id, after, PAGE
    )
    experiment = doc["experiment"]
    baseline = [c for c in doc["comparisons"] if c["a_position"] == 0]
    promotable = [v for v in experiment["variants"] if (v["spec"] or {}).get("kind") == "prompt"]
    return ctx.render(
        "experiment.html",
        exp=experiment,
        here=path("experiments", exp_id),
        progress=progress(experiment),
        variants=experiment["variants"],
        evaluators=doc["evaluators"],
        baseline=baseline,
        rows=rows,
        after=after,
        next_after=next_after,
        promotable=promotable,
        promoted=ctx.request.query_params.get("promoted", ""),
    )


async def progress_json(ctx: Ctx) -> Response:
    exp_id = exp_id_of(ctx)
    row = None
    if exp_id is not None:
        row = await ctx.run(results_store.get_experiment, ctx.engine, ctx.org_id, exp_id)
    if row is None:
        return JSONResponse({"error": "not found"}, 404)
    return JSONResponse(progress(row), headers={"Cache-Control": "no-store"})


def _position(value: str | None) -> int | None:
    if value and value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    return None


async def diff_page(ctx: Ctx) -> Response:
    """Two outputs of one item word by word: ``?item=<position>&a=<variant>&b=<variant>``
    (variant positions; the baseline and the second variant by default)."""
    exp_id = exp_id_of(ctx)
    q = ctx.request.query_params
    item = _position(q.get("item"))
    if exp_id is None or item is None:
        return missing(ctx)
    experiment = await ctx.run(results_store.get_experiment, ctx.engine, ctx.org_id, exp_id)
    if experiment is None:
        return missing(ctx)
    cells = await ctx.run(results_store.item_cells, ctx.engine, ctx.org_id, exp_id, item)
    by_position = {v["position"]: v for v in experiment["variants"]}
    a, b = _position(q.get("a")), _position(q.get("b"))
    a = 0 if a is None else a
    b = (1 if a != 1 else 0) if b is None else b
    if not cells or a not in by_position or b not in by_position:
        return ctx.not_found("No such item or variant in this experiment.")
    by_variant = {c["variant_id"]: c for c in cells}
    left = by_variant.get(by_position[a]["id"])
    right = by_variant.get(by_position[b]["id"])
    pieces = word_diff(
        (left or {}).get("output") or "", (right or {}).get("output") or "", Budget()
    )
    for v in experiment["variants"]:
        v["letter"] = results_doc.variant_label(v["position"])
    return ctx.render(
        "experiment_diff.html",
        exp=experiment,
        here=path("experiments", exp_id),
        item=item,
        a=by_position[a],
        b=by_position[b],
        left=left,
        right=right,
        pieces=pieces,
    )


async def export(ctx: Ctx) -> Response:
    exp_id, fmt = exp_id_of(ctx), ctx.request.path_params["fmt"]
    if exp_id is None or fmt not in ("csv", "jsonl"):
        return missing(ctx)
    response = await export_response(ctx.engine, ctx.org_id, exp_id, fmt)
    return missing(ctx) if response is None else response


async def promote_action(ctx: Ctx) -> Response:
    """Step one shows the move; step two (``confirm=promote``) makes it."""
    exp_id = exp_id_of(ctx)
    if exp_id is None:
        return missing(ctx)
    experiment = await ctx.run(results_store.get_experiment, ctx.engine, ctx.org_id, exp_id)
    if experiment is None:
        return missing(ctx)
    label = ctx.form.get("label", "production").strip()
    if not LABEL.fullmatch(label):
        message = "A label is 1 to 64 characters: lowercase letters, digits, '-' and '_'."
        return ctx.render("error.html", 400, title="Not promoted", message=message)
    try:
        variant, name, version = promotion_target(experiment, ctx.form.get("variant", ""))
    except PromoteError as exc:
        return ctx.render("error.html", 400, title="Not promoted", message=str(exc) + ".")
    prompt = await ctx.run(prompt_store.get_prompt, ctx.engine, ctx.org_id, name)
    here = path("experiments", exp_id)
    context: dict[str, Any] = {
        "exp": experiment,
        "here": here,
        "variant": variant,
        "prompt_name": name,
        "version": version,
        "label": label,
        "was": None if prompt is None else prompt["labels"].get(label),
    }
    if ctx.form.get("confirm") != CONFIRM:
        return ctx.render("experiment_promote.html", **context)
    moved = await ctx.run(
        prompt_store.move_label, ctx.engine, ctx.org_id, name, label, version, by_user(ctx)
    )
    if moved is None:
        message = f"Prompt {name!r} has no version {version} any more."
        return ctx.render("error.html", 409, title="Not promoted", message=message)
    return RedirectResponse(query_url(here, {"promoted": f"{name}@{label}=v{version}"}), 303)
