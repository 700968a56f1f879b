"""The prompt Playground: fill a prompt's variables, run one or two versions (or a version
on another model or upstream) through the gateway, and see the outputs side by side.

Each column is sent as a client would send it: an OpenAI chat completions body naming
``prompt_id``, ``prompt_version`` or ``prompt_label`` and ``inputs``, through the real
gateway path in-process (``gateway_call``, shared with Replay). So the gateway itself renders
the prompt and records it like any production request (prompt name, version, label, inputs,
tokens, cost), nothing here renders a second way, and the run is filterable on the Requests
page by its ``playground`` property (the prompt's name; ``playground_run`` groups the columns
of one run, ``playground_by`` says who ran it). The columns run concurrently; the page then
waits, boundedly, for the writer to store each record and shows the stored figures.

Running spends money, so it is an admin action like Replay: viewers may open the page (the
versions and variables, read-only), and a POST from them is answered 403 by the route.
Everything the form checks (see ``playground_form``) is checked before anything is sent.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from starlette.responses import Response

from heliograph.api.prompts import NAME
from heliograph.providers import error_message, output_text
from heliograph.store import prompts as prompt_store
from heliograph.web import gateway_call
from heliograph.web.context import Ctx
from heliograph.web.format import path, query_url
from heliograph.web.playground_form import (
    LABEL_PREFIX,
    PlaygroundForm,
    Ready,
    Refused,
    capable,
    check_column,
    from_post,
    given_inputs,
    initial,
    place,
    ref_of,
    variables,
)
from heliograph.web.replay_form import Target
from heliograph.web.request_detail import model_choices

RECORD_WAIT_S = 5.0  # how long the page waits for the writer to store each run


def _load(engine: Any, org_id: str, name: str) -> tuple[dict[str, Any], list[Any]] | None:
    prompt = prompt_store.get_prompt(engine, org_id, name)
    if prompt is None:
        return None
    return prompt, prompt_store.list_versions(engine, org_id, name)


async def _prompt(ctx: Ctx) -> tuple[dict[str, Any], list[Any]] | None:
    name = ctx.request.path_params["name"]
    if not NAME.fullmatch(name):  # never stored, so never found
        return None
    return await ctx.run(_load, ctx.engine, ctx.org_id, name)


def _targets(ctx: Ctx) -> list[Target]:
    return capable(ctx.settings.resolved_upstreams(), set(ctx.request.app.state.gateway.upstreams))


def _render(
    ctx: Ctx,
    prompt: dict[str, Any],
    versions: list[Any],
    form: PlaygroundForm,
    status: int = 200,
    results: list[dict[str, Any]] | None = None,
    models: dict[str, list[str]] | None = None,
) -> Response:
    targets = _targets(ctx)
    place(form, prompt, versions, [t.name for t in targets])
    used: dict[str, list[int]] = {}
    for row in reversed(versions):
        for var in row["variables"] or {}:
            used.setdefault(var, []).append(row["version"])
    labels = [(k, v) for k, v in sorted((prompt.get("labels") or {}).items()) if v is not None]
    return ctx.render(
        "playground.html",
        status,
        prompt=prompt,
        versions=versions,
        labels=labels,
        label_prefix=LABEL_PREFIX,
        ref_of=ref_of,
        used=used,
        form=form,
        targets=targets,
        results=results,
        models=models or {},
        wait_s=RECORD_WAIT_S,
    )


async def playground_page(ctx: Ctx) -> Response:
    loaded = await _prompt(ctx)
    if loaded is None:
        return ctx.not_found("No such prompt in your organization.")
    prompt, versions = loaded
    form = initial(prompt, versions, dict(ctx.request.query_params))
    models = await ctx.run(model_choices, ctx) if ctx.user.is_admin else {}
    return _render(ctx, prompt, versions, form, models=models)


async def playground_run(ctx: Ctx) -> Response:
    """Check every column, then run them all at once (admins only: the route says so)."""
    loaded = await _prompt(ctx)
    if loaded is None:
        return ctx.not_found("No such prompt in your organization.")
    prompt, versions = loaded
    form = from_post(ctx.form, list(variables(versions)))
    models = await ctx.run(model_choices, ctx)
    ready: list[Ready] = []
    try:
        inputs = given_inputs(form)
        chosen = [c for c in form.columns if c.ref]
        if not chosen:
            raise Refused("Choose a version or a label for at least one column.")
        targets = _targets(ctx)
        for column in chosen:
            form.slot = column.slot
            key = ctx.form.get(f"{column.slot}_key", "")
            ready.append(
                await ctx.run(
                    check_column,
                    ctx.engine,
                    ctx.org_id,
                    prompt["name"],
                    column,
                    key,
                    inputs,
                    targets,
                )
            )
    except Refused as refused:
        form.error = str(refused)
        return _render(ctx, prompt, versions, form, refused.status, models=models)
    form.slot = ""
    run_id = uuid.uuid4().hex[:16]
    results = await asyncio.gather(*(_run(ctx, prompt["name"], r, inputs, run_id) for r in ready))
    return _render(ctx, prompt, versions, form, results=list(results), models=models)


async def _run(
    ctx: Ctx, name: str, ready: Ready, inputs: dict[str, str], run_id: str
) -> dict[str, Any]:
    """Send one column through the gateway and read back its stored record."""
    body: dict[str, Any] = {"prompt_id": name, "inputs": inputs}
    if ready.label:
        body["prompt_label"] = ready.label
    else:
        body["prompt_version"] = ready.version["version"]
    if ready.column.model:  # the client's model wins over the version's
        body["model"] = ready.column.model
    headers = [
        ("heliograph-property-playground", name),
        ("heliograph-property-playground_run", run_id),
        ("heliograph-property-playground_by", ctx.user.email),
    ]
    if ready.version["upstream"] not in (None, ready.target.name):
        # Another upstream than the version's: a client says so with a Target-URL (the
        # gateway otherwise sends a rendered prompt to its version's own upstream).
        url = ctx.request.app.state.gateway.upstreams[ready.target.name].url
        headers.append(("helicone-target-url", url))
    exchange, elapsed = await gateway_call.call(
        ctx, ready.target, orjson.dumps(body), headers, ready.key
    )
    rid = exchange.headers.get("heliograph-id")
    stored = await gateway_call.wait_for_record(ctx, rid, RECORD_WAIT_S) if rid else None
    upstreams = ctx.settings.resolved_upstreams()
    if stored is not None:
        side = gateway_call.figures(stored, upstreams)
        text = output_text(stored.get("response_body"))
    else:
        side = {"upstream": ready.target.name, "where": "local" if ready.target.local else "cloud"}
        side.update(status=exchange.status, latency_ms=elapsed, model=ready.column.model)
        text = gateway_call.answer_text(exchange, ready.target, elapsed)
    return {
        "slot": ready.column.slot,
        "asked": ready.label or f"version {ready.version['version']}",
        "version": (stored or {}).get("prompt_version") or ready.version["version"],
        "side": side,
        "text": text,
        "messages": ready.messages,
        "stored": stored is not None,
        "id": rid,
        "href": path("requests", rid) if rid else "",
        "run_href": query_url("/requests", {"property.playground_run": run_id}),
        "error": error_message(bytes(exchange.body)) if exchange.status >= 400 else None,
    }
