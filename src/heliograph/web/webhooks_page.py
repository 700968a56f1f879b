"""The record webhooks settings page: ``/settings/webhooks`` (admins only).

Admins see every endpoint (URL, filter, state, where it comes from, the masked secret, its
last error and success, delivery counts and its most recent deliveries), create endpoints,
turn them on and off, delete them and queue a test event. The filter is the Requests page's
URL spelling (``model=gpt-4o&property.team=red``), checked by the same parser as the API; a
new endpoint's secret is shown once, in the answer to the form that created it. Endpoints
from config.toml are shown but changed only in the file. The whole page is for admins: an
endpoint's URL may carry a receiver's token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import RedirectResponse, Response

from heliograph.alerts.webhook_specs import EndpointError, check_endpoint, mask
from heliograph.store import webhook_queue as queue
from heliograph.store import webhooks as store
from heliograph.web.context import Ctx, forbidden
from heliograph.web.evaluations import MAX_FILTER_CHARS, filter_text

HERE = "/settings/webhooks"
RECENT = 10


def _load(ctx: Ctx) -> list[dict[str, Any]]:
    endpoints = store.list_endpoints(ctx.engine, ctx.org_id, with_secret=True)
    counts = queue.counts(ctx.engine, ctx.org_id)
    for e in endpoints:
        e["secret_hint"] = mask(e.pop("secret"))
        found = counts.get(e["id"], {})
        e["counts"] = {s: found.get(s, 0) for s in ("pending", "delivered", "failed")}
        e["filter_text"] = filter_text(e["filter"] or {})
        e["recent"] = queue.deliveries(ctx.engine, ctx.org_id, e["id"], RECENT)
    return endpoints


async def _page(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    if not ctx.user.is_admin:
        return forbidden(ctx.ui, ctx.user, "Only admins can see webhook endpoints.")
    endpoints = await ctx.run(_load, ctx)
    context: dict[str, Any] = {"error": "", "form": {}, "new_secret": None}
    context |= extra
    return ctx.render("webhooks.html", status, endpoints=endpoints, **context)


async def webhooks_page(ctx: Ctx) -> Response:
    return await _page(ctx)


def _doc(ctx: Ctx) -> dict[str, Any]:
    """The create form as an API body."""
    form = ctx.form
    text = form.get("filter", "").strip().lstrip("?")
    if len(text) > MAX_FILTER_CHARS:
        raise EndpointError("filter", f"must be at most {MAX_FILTER_CHARS} characters")
    pairs = parse_qsl(text, keep_blank_values=False)
    names = [n for n, _ in pairs]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise EndpointError(f"filter.{repeated}", "given twice; an endpoint takes each once")
    doc: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "url": form.get("url", "").strip(),
        "filter": dict(pairs),
        "include_bodies": form.get("include_bodies") == "1",
    }
    if form.get("secret", "").strip():
        doc["secret"] = form["secret"].strip()
    return doc


async def create_action(ctx: Ctx) -> Response:
    try:
        spec = check_endpoint(_doc(ctx))
    except EndpointError as exc:
        return await _page(ctx, 400, error=f"Not saved: {exc}.", form=ctx.form)
    try:
        made = await ctx.run(store.create_endpoint, ctx.engine, ctx.org_id, spec)
    except store.DuplicateName:
        error = f"Not saved: an endpoint named {spec['name']!r} exists."
        return await _page(ctx, 409, error=error, form=ctx.form)
    return await _page(ctx, new_secret={"name": made["name"], "secret": spec["secret"]})


async def _change(ctx: Ctx, fn: Any, *args: Any) -> Response:
    endpoint_id = ctx.request.path_params["endpoint_id"]
    try:
        found = await ctx.run(fn, ctx.engine, ctx.org_id, endpoint_id, *args)
    except store.FromConfig:
        error = "That endpoint comes from config.toml: change it there."
        return await _page(ctx, 409, error=error)
    if not found:
        return await _page(ctx, 404, error="No such webhook endpoint in your organization.")
    return RedirectResponse(HERE, 303)


async def toggle_action(ctx: Ctx) -> Response:
    enabled = ctx.form.get("enabled") == "1"
    return await _change(ctx, store.update_endpoint, {"enabled": enabled})


async def delete_action(ctx: Ctx) -> Response:
    return await _change(ctx, store.delete_endpoint)


async def test_action(ctx: Ctx) -> Response:
    endpoint_id = ctx.request.path_params["endpoint_id"]
    found = await ctx.run(store.get_endpoint, ctx.engine, ctx.org_id, endpoint_id)
    if found is None:
        return await _page(ctx, 404, error="No such webhook endpoint in your organization.")
    await ctx.run(queue.enqueue_test, ctx.engine, ctx.org_id, endpoint_id)
    return RedirectResponse(f"{HERE}#endpoint-{endpoint_id}", 303)
