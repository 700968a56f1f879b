"""The Datasets pages: every dataset, one dataset's items, and adding requests to one.

``/datasets`` lists the organization's datasets with their item counts; admins create one.
``/datasets/<name>`` pages through its items (inputs, expected output and metadata shown as
escaped text), with an upload form (``datasets.js`` sends the file as the body, as the API
takes it; the report comes back per line) and, for admins, an archive button per item.

From the Requests page, admins add the rows they ticked (``pick.<id>`` fields; a form keeps
one value per name) or every request matching the page's filters. The second takes two
steps: ``/datasets/add-matching?<the page's filters>`` shows how many requests match first,
and only its form adds them (at most ``MAX_FROM_REQUESTS``, newest first). Free-text search
is not SQL and cannot be counted up front, so it cannot select requests to add.
Items come from records exactly as the API's from-requests makes them.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response, StreamingResponse

from heliograph.api.dataset_imports import (
    MAX_FROM_REQUESTS,
    Report,
    export_lines,
    import_requests,
)
from heliograph.api.datasets import ITEM_ID, NAME_RULE, name_problem
from heliograph.api.prompts import DESCRIPTION_RULE, NAME, description_problem
from heliograph.evals.dataset_items import MAX_EXPECTED_CHARS, MAX_INPUTS_BYTES
from heliograph.store import actors, dataset_sources
from heliograph.store import datasets as dataset_store
from heliograph.web.context import Ctx
from heliograph.web.format import path, query_url
from heliograph.web.prompts import by_user
from heliograph.web.query import parse_request_query

PAGE = 50
PICK = "pick."


def _name(ctx: Ctx) -> str | None:
    name: str = ctx.request.path_params.get("name") or ctx.form.get("dataset", "")
    return name if NAME.fullmatch(name) else None


def _missing(ctx: Ctx) -> Response:
    return ctx.not_found("No such dataset in your organization.")


async def _list_view(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    rows = await ctx.run(dataset_store.list_datasets, ctx.engine, ctx.org_id)
    context: dict[str, Any] = {"error": "", "form": {}} | extra
    return ctx.render("datasets.html", status, rows=rows, **context)


async def datasets_page(ctx: Ctx) -> Response:
    return await _list_view(ctx)


async def create_action(ctx: Ctx) -> Response:
    name = ctx.form.get("name", "").strip()
    description = ctx.form.get("description", "")
    form = {"name": name, "description": description}
    if name_problem(name):
        return await _list_view(ctx, 400, error=NAME_RULE.capitalize() + ".", form=form)
    if description_problem(description):
        return await _list_view(ctx, 400, error=DESCRIPTION_RULE.capitalize() + ".", form=form)
    try:
        await ctx.run(
            dataset_store.create_dataset, ctx.engine, ctx.org_id, name, description, by_user(ctx)
        )
    except dataset_store.DuplicateName:
        error = f"A dataset named {name!r} already exists."
        return await _list_view(ctx, 409, error=error, form=form)
    return RedirectResponse(path("datasets", name), 303)


async def export_file(ctx: Ctx) -> Response:
    """The dataset's items as JSONL for a signed-in user (the API's export needs a key)."""
    name = _name(ctx)
    found = (
        None
        if name is None
        else await ctx.run(dataset_store.get_dataset, ctx.engine, ctx.org_id, name)
    )
    if name is None or found is None:
        return _missing(ctx)
    headers = {"Content-Disposition": f'attachment; filename="{name}.jsonl"'}
    lines = export_lines(ctx.engine, ctx.org_id, name)
    return StreamingResponse(lines, media_type="application/x-ndjson", headers=headers)


def _load(ctx: Ctx, name: str, cursor: str | None, archived: bool) -> dict[str, Any] | None:
    dataset = dataset_store.get_dataset(ctx.engine, ctx.org_id, name)
    if dataset is None:
        return None
    try:
        rows, next_cursor = dataset_store.list_items(
            ctx.engine, ctx.org_id, name, PAGE, cursor, archived=archived
        )
    except ValueError:
        rows, next_cursor = dataset_store.list_items(
            ctx.engine, ctx.org_id, name, PAGE, None, archived=archived
        )
    for row in rows:  # shown as escaped text, never through |tojson's \u escapes
        row["inputs_text"] = orjson.dumps(row["inputs"], option=orjson.OPT_INDENT_2).decode()
        row["metadata_text"] = orjson.dumps(row["metadata"] or {}).decode()
    refs = [dataset["created_by"], *(r["created_by"] for r in rows)]
    return {
        "dataset": dataset,
        "items": rows,
        "next_cursor": next_cursor,
        "authors": actors.names(ctx.engine, ctx.org_id, refs),
    }


async def dataset_page(ctx: Ctx) -> Response:
    name = _name(ctx)
    q = ctx.request.query_params
    archived = q.get("archived") == "1"
    data = None if name is None else await ctx.run(_load, ctx, name, q.get("cursor"), archived)
    if name is None or data is None:
        return _missing(ctx)
    return ctx.render(
        "dataset.html",
        name=name,
        here=path("datasets", name),
        archived=archived,
        first_page=not q.get("cursor"),
        added=q.get("added", ""),
        skipped=q.get("skipped", ""),
        problems=q.get("problems", ""),
        limits={"inputs": MAX_INPUTS_BYTES, "expected": MAX_EXPECTED_CHARS},
        **data,
    )


async def archive_action(ctx: Ctx) -> Response:
    name, item_id = _name(ctx), ctx.request.path_params["item_id"]
    if name is None or not ITEM_ID.fullmatch(item_id):
        return _missing(ctx)
    done = await ctx.run(dataset_store.archive_item, ctx.engine, ctx.org_id, name, item_id)
    if not done:
        return ctx.not_found("No such item in this dataset (it may be archived already).")
    return RedirectResponse(path("datasets", name), 303)


def _report_url(name: str, report: Report) -> str:
    return query_url(
        path("datasets", name),
        {
            "added": str(report.added),
            "skipped": str(report.skipped),
            "problems": str(report.error_count),
        },
    )


async def add_requests_action(ctx: Ctx) -> Response:
    """Ticked rows (``pick.<id>``), or with ``query`` every request its filters match."""
    name = _name(ctx)
    if name is None:
        return ctx.render(
            "error.html", 400, title="Not added", message="Choose a dataset to add requests to."
        )
    if await ctx.run(dataset_store.get_dataset, ctx.engine, ctx.org_id, name) is None:
        return _missing(ctx)
    if "query" in ctx.form:
        rq = parse_request_query(QueryParams(ctx.form["query"]))
        if rq.filter.text or rq.errors:
            message = "Free-text search and invalid filters cannot select requests to add."
            return ctx.render("error.html", 400, title="Not added", message=message)
        ids = await ctx.run(
            dataset_sources.matching_ids, ctx.engine, ctx.org_id, rq.filter, MAX_FROM_REQUESTS
        )
    else:
        ids = [k[len(PICK) :] for k in ctx.form if k.startswith(PICK)]
    if not ids:
        return ctx.render(
            "error.html", 400, title="Not added", message="No requests were selected."
        )
    with_expected = ctx.form.get("expected") == "1"  # the forms' checkbox, ticked by default
    report = await ctx.run(
        import_requests, ctx.engine, ctx.org_id, name, ids, with_expected, by_user(ctx)
    )
    return RedirectResponse(_report_url(name, report), 303)


async def add_matching_page(ctx: Ctx) -> Response:
    """Step one of "add all matching": the count, and the form that adds them."""
    q = ctx.request.query_params
    rq = parse_request_query(q)
    names = await ctx.run(dataset_store.dataset_names, ctx.engine, ctx.org_id)
    count = None
    if not rq.filter.text and not rq.errors:
        count = await ctx.run(dataset_sources.count_matching, ctx.engine, ctx.org_id, rq.filter)
    return ctx.render(
        "dataset_add.html",
        rq=rq,
        count=count,
        cap=MAX_FROM_REQUESTS,
        names=names,
        query=str(q),
        back=query_url("/requests", list(q.multi_items())),
    )
