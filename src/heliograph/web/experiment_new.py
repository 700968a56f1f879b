"""The Experiments list, its New experiment form, and the Cancel button of a running one.

A dashboard user starts an experiment the way the API does, never through a second copy of
its rules: the form is turned into the API's creation body, which ``api.experiments.
check_body`` checks, and ``evals.experiments`` resolves, estimates and stores. The form only
reads text (a number field as a number, the params box as JSON) and says which field a
message belongs to, so the message shows beside it.

Starting spends money, so it takes two steps like promotion: "Estimate" (``step=estimate``,
the API's dry run: cells and estimated cost, unpriced models listed) shows the figure with the
inputs kept, and only then "Start" (``step=start``) creates the experiment and redirects to
its page. Cancel carries ``confirm=cancel`` (a box to tick) and stops the run through
``api.experiments.cancel``, the API's own logic.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import RedirectResponse, Response

from heliograph.api.experiments import cancel, check_body
from heliograph.api.responses import ApiError
from heliograph.evals import experiments as engine_
from heliograph.evals.experiment_specs import VariantError, parse_variant
from heliograph.store import datasets as dataset_store
from heliograph.store import evaluators as evaluator_store
from heliograph.store import experiment_results as results_store
from heliograph.store import experiments as experiment_store
from heliograph.store import prompts as prompt_store
from heliograph.web.context import Ctx
from heliograph.web.experiments import exp_id_of, missing, progress
from heliograph.web.format import path
from heliograph.web.prompts import by_user

ROWS = 4  # variant rows on the form (the API takes more; four fit a page)
PICKED = "ev."  # a ticked saved evaluator: ev.<name>
VERSIONS_OFFERED = 20
CONFIRM = "cancel"
# Where a message of check_body or the engine belongs, by how it begins.
FIELDS = (
    ("name", "name"),
    ("dataset", "dataset"),
    ("give exactly one", "dataset"),
    ("no dataset", "dataset"),
    ("there are no items", "dataset"),
    ("evaluator", "evaluators"),
    ("no evaluator", "evaluators"),
    ("judge", "evaluators"),
    ("concurrency", "concurrency"),
    ("cost_cap_usd", "cost_cap"),
)


class FormError(ValueError):
    """A form field that cannot be read; ``field`` is where the message shows."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def field_of(message: str) -> str:
    """The form field an API or engine message is about (variants by default)."""
    lowered = message.lower()
    return next((f for start, f in FIELDS if lowered.startswith(start)), "variants")


def _variant(form: dict[str, str], row: int) -> dict[str, Any] | None:
    prompt = form.get(f"v{row}.prompt", "").strip()
    model = form.get(f"v{row}.model", "").strip()
    params_text = form.get(f"v{row}.params", "").strip()
    if not prompt and not model:
        if params_text:
            raise FormError("variants", f"variant {row}: choose a prompt or write a model")
        return None
    if prompt and model:
        raise FormError("variants", f"variant {row}: choose a prompt or a model, not both")
    try:
        spec = parse_variant(prompt or model)
    except VariantError as exc:
        raise FormError("variants", f"variant {row}: {exc}") from exc
    if params_text:
        try:
            params = orjson.loads(params_text)
        except orjson.JSONDecodeError as exc:
            raise FormError("variants", f"variant {row} params: not valid JSON ({exc})") from exc
        if not isinstance(params, dict):
            raise FormError("variants", f'variant {row} params: a JSON object, {{"seed": 1}}')
        spec["params"] = params
    return spec


def _number(form: dict[str, str], key: str, field: str, kind: type) -> Any:
    text = form.get(key, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError as exc:
        raise FormError(field, f"{field.replace('_', ' ')} must be a number") from exc


def body_of(form: dict[str, str]) -> dict[str, Any]:
    """The API's creation body the form describes (checked by ``check_body`` after)."""
    variants = [v for row in range(1, ROWS + 1) if (v := _variant(form, row)) is not None]
    if not variants:
        raise FormError("variants", "give at least one variant: a prompt or a model")
    typed = [line.strip() for line in form.get("evaluators", "").splitlines() if line.strip()]
    picked = [k[len(PICKED) :] for k in form if k.startswith(PICKED)]
    doc: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "dataset": form.get("dataset", ""),
        "variants": variants,
        "evaluators": picked + typed,
    }
    concurrency = _number(form, "concurrency", "concurrency", int)
    if concurrency is not None:
        doc["concurrency"] = concurrency
    cap = _number(form, "cost_cap", "cost_cap", float)
    if cap is not None:
        doc["cost_cap_usd"] = cap
    return doc


def _prompt_choices(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per prompt, its labels then its newest versions, as variant spellings."""
    out = []
    for row in rows:
        name, latest = row["name"], row["latest_version"] or 0
        choices = [
            (f"prompt:{name}@{label}", f"{label} (v{version})")
            for label, version in sorted(row["labels"].items())
            if version is not None
        ]
        low = max(1, latest - VERSIONS_OFFERED + 1)
        choices += [(f"prompt:{name}:{v}", f"version {v}") for v in range(latest, low - 1, -1)]
        if choices:
            out.append({"name": name, "choices": choices})
    return out


def options(ctx: Ctx) -> dict[str, Any]:
    """What the form offers: datasets, prompts, upstreams and saved evaluators."""
    return {
        "dataset_names": dataset_store.dataset_names(ctx.engine, ctx.org_id),
        "prompt_choices": _prompt_choices(prompt_store.list_prompts(ctx.engine, ctx.org_id)),
        "upstreams": sorted(ctx.settings.resolved_upstreams()),
        "saved": [r["name"] for r in evaluator_store.list_evaluators(ctx.engine, ctx.org_id)],
        "variant_rows": ROWS,
        "default_concurrency": engine_.DEFAULT_CONCURRENCY,
        "max_concurrency": engine_.MAX_CONCURRENCY,
    }


async def list_view(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    rows = await ctx.run(results_store.list_experiments, ctx.engine, ctx.org_id)
    for row in rows:
        row["progress"] = progress(row)
    context: dict[str, Any] = {"form": {}, "errors": {}, "estimate": None, "opened": False}
    if ctx.user.is_admin:
        context |= await ctx.run(options, ctx)
    return ctx.render("experiments.html", status, rows=rows, **(context | extra))


async def experiments_page(ctx: Ctx) -> Response:
    return await list_view(ctx)


async def new_action(ctx: Ctx) -> Response:
    """``step=estimate`` answers the dry run with the inputs kept; ``step=start`` creates."""
    form = dict(ctx.form)
    form.pop("csrf_token", None)
    start = form.pop("step", "") == "start"
    try:
        doc = check_body(body_of(form))
        book = ctx.request.app.state.pricebook
        if start:
            row = await ctx.run(
                engine_.create, ctx.engine, ctx.org_id, doc, ctx.settings, book, by_user(ctx)
            )
            return RedirectResponse(path("experiments", row["id"]), 303)
        plan, _ = await ctx.run(
            engine_.plan_experiment, ctx.engine, ctx.org_id, doc, ctx.settings, book
        )
    except FormError as exc:
        errors = {exc.field: str(exc)}
    except ApiError as exc:
        errors = {field_of(exc.message): exc.message}
    except (engine_.ExperimentError, VariantError) as exc:
        errors = {field_of(str(exc)): str(exc)}
    else:
        return await list_view(ctx, form=form, estimate=plan.estimate_api(), opened=True)
    return await list_view(ctx, 400, form=form, errors=errors, opened=True)


async def cancel_action(ctx: Ctx) -> Response:
    exp_id = exp_id_of(ctx)
    if exp_id is None:
        return missing(ctx)
    row = await ctx.run(experiment_store.get_experiment, ctx.engine, exp_id, ctx.org_id)
    if row is None:
        return missing(ctx)
    if ctx.form.get("confirm") != CONFIRM:
        message = "Tick the box to confirm that the run should stop."
        return ctx.render("error.html", 400, title="Not cancelled", message=message)
    await ctx.run(cancel, ctx.engine, row)  # a finished run stays as it is
    return RedirectResponse(path("experiments", exp_id), 303)
