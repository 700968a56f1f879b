"""The alerts page: ``/alerts``, rules with their state and the history of their events.

Everyone signed in sees the rules (metric, filter, window, threshold, current state and last
value, last error) and the history (time, rule, firing or resolved, value, threshold, how each
notification went). Admins create, pause and delete rules and channels here and send a test
notification per channel, which shows at once whether it arrived or why not. Definitions go
through ``alerts.definitions`` like the API's, so a mistake re-shows the form with the field
named and what was typed kept. Secrets are write-only: a channel shows a masked hint.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.responses import RedirectResponse, Response

from heliograph.alerts.channels import send_test
from heliograph.alerts.definitions import (
    CHANNEL_FIELDS,
    CHANNEL_KINDS,
    COMPARISONS,
    SMTP_SECURITY,
    DefinitionError,
    check_channel,
    check_rule,
    format_window,
    hint,
)
from heliograph.alerts.metrics import METRICS
from heliograph.store import alert_state
from heliograph.store import alerts as store
from heliograph.web.context import Ctx

HERE = "/alerts"
EVENTS_SHOWN = 100
MAX_FILTER_CHARS = 4000


def _load(ctx: Ctx) -> dict[str, Any]:
    channels = store.list_channels(ctx.engine, ctx.org_id)
    names = {c["id"]: c["name"] for c in channels}
    rules = store.list_rules(ctx.engine, ctx.org_id)
    for rule in rules:
        rule["filter_text"] = urlencode(sorted((rule["filter"] or {}).items()))
        rule["window"] = format_window(rule["window_s"])
        rule["cooldown"] = format_window(rule["cooldown_s"]) if rule["cooldown_s"] else "none"
        rule["channel_names"] = [names.get(c, "?") for c in rule["channels"] or []]
        rule["metric_label"] = METRICS[rule["metric"]].label if rule["metric"] in METRICS else ""
    for channel in channels:
        channel["hints"] = {k: hint(v) for k, v in (channel["secrets"] or {}).items()}
    events = store.list_events(ctx.engine, ctx.org_id, limit=EVENTS_SHOWN)
    sent = alert_state.deliveries(ctx.engine, ctx.org_id, [e["id"] for e in events])
    for event in events:
        event["deliveries"] = sent.get(event["id"], [])
    return {"rules": rules, "channels": channels, "events": events}


async def _page(ctx: Ctx, status: int = 200, **extra: Any) -> Response:
    loaded = await ctx.run(_load, ctx)
    context: dict[str, Any] = {
        "error": "",
        "rule_form": {},
        "channel_form": {},
        "tested": None,
        "metrics": METRICS,
        "comparisons": COMPARISONS,
        "kinds": CHANNEL_KINDS,
        "securities": SMTP_SECURITY,
    }
    return ctx.render("alerts.html", status, **(context | loaded | extra))


async def alerts_page(ctx: Ctx) -> Response:
    return await _page(ctx)


def _number(text: str, field: str) -> float | int:
    try:
        value = float(text)
    except ValueError as exc:
        raise DefinitionError(field, "must be a number") from exc
    return int(value) if value.is_integer() and field != "threshold" else value


def _rule_doc(ctx: Ctx) -> dict[str, Any]:
    form = ctx.form
    text = form.get("filter", "").strip().lstrip("?")
    if len(text) > MAX_FILTER_CHARS:
        raise DefinitionError("filter", f"must be at most {MAX_FILTER_CHARS} characters")
    pairs = parse_qsl(text, keep_blank_values=False)
    names = [n for n, _ in pairs]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise DefinitionError(f"filter.{repeated}", "given twice; a rule takes each once")
    channels = [c.strip() for c in form.get("channels", "").split(",") if c.strip()]
    return {
        "name": form.get("name", "").strip(),
        "metric": form.get("metric", ""),
        "filter": dict(pairs),
        "window": form.get("window", "").strip(),
        "comparison": form.get("comparison", ""),
        "threshold": _number(form.get("threshold", ""), "threshold"),
        "min_requests": int(_number(form.get("min_requests", "0") or "0", "min_requests")),
        "cooldown": form.get("cooldown", "").strip() or 0,
        "channels": channels,
        "enabled": form.get("enabled") == "1",
    }


async def create_rule_action(ctx: Ctx) -> Response:
    form = dict(ctx.form)
    try:
        doc = _rule_doc(ctx)
        refs = await ctx.run(store.channel_refs, ctx.engine, ctx.org_id)
        rule = check_rule(doc, refs)
        await ctx.run(store.create_rule, ctx.engine, ctx.org_id, rule, f"user:{ctx.user.id}")
    except DefinitionError as exc:
        return await _page(ctx, 400, error=f"Rule not saved: {exc}", rule_form=form)
    except store.DuplicateName:
        return await _page(ctx, 409, error="Rule not saved: a rule has this name.", rule_form=form)
    return RedirectResponse(HERE, 303)


async def _rule(ctx: Ctx) -> dict[str, Any] | None:
    rule_id = ctx.request.path_params["rule_id"]
    return await ctx.run(store.get_rule, ctx.engine, ctx.org_id, rule_id)


async def toggle_rule_action(ctx: Ctx) -> Response:
    rule = await _rule(ctx)
    if rule is None:
        return ctx.not_found("No such alert rule in your organization.")
    if rule["source"] == "config":
        return await _page(ctx, 409, error="This rule comes from config.toml: change it there.")
    await ctx.run(
        store.update_rule, ctx.engine, ctx.org_id, rule["id"], {"enabled": not rule["enabled"]}
    )
    return RedirectResponse(HERE, 303)


async def delete_rule_action(ctx: Ctx) -> Response:
    rule = await _rule(ctx)
    if rule is None:
        return ctx.not_found("No such alert rule in your organization.")
    if rule["source"] == "config":
        return await _page(ctx, 409, error="This rule comes from config.toml: change it there.")
    await ctx.run(store.delete_rule, ctx.engine, ctx.org_id, rule["id"])
    return RedirectResponse(HERE, 303)


def _channel_doc(ctx: Ctx) -> dict[str, Any]:
    form = ctx.form
    kind = form.get("kind", "")
    doc: dict[str, Any] = {"name": form.get("name", "").strip(), "kind": kind}
    for field in CHANNEL_FIELDS.get(kind, ()):
        value = form.get(field, "").strip()
        if not value:
            continue
        if field == "to":
            doc["to"] = [a.strip() for a in value.split(",") if a.strip()]
        elif field in ("port", "timeout_s"):
            doc[field] = _number(value, field)
        else:
            doc[field] = value
    return doc


async def create_channel_action(ctx: Ctx) -> Response:
    form = {k: v for k, v in ctx.form.items() if k not in ("password", "secret", "url")}
    try:
        channel = check_channel(_channel_doc(ctx))
        await ctx.run(store.create_channel, ctx.engine, ctx.org_id, channel)
    except DefinitionError as exc:
        return await _page(ctx, 400, error=f"Channel not saved: {exc}", channel_form=form)
    except store.DuplicateName:
        error = "Channel not saved: a channel has this name."
        return await _page(ctx, 409, error=error, channel_form=form)
    return RedirectResponse(HERE, 303)


async def _channel(ctx: Ctx) -> dict[str, Any] | None:
    channel_id = ctx.request.path_params["channel_id"]
    return await ctx.run(store.get_channel, ctx.engine, ctx.org_id, channel_id)


async def test_channel_action(ctx: Ctx) -> Response:
    channel = await _channel(ctx)
    if channel is None:
        return ctx.not_found("No such channel in your organization.")
    settings = ctx.settings
    error = await send_test(channel, settings.base_url(), settings.alerts_send_timeout_s)
    return await _page(ctx, tested={"id": channel["id"], "name": channel["name"], "error": error})


async def delete_channel_action(ctx: Ctx) -> Response:
    channel = await _channel(ctx)
    if channel is None:
        return ctx.not_found("No such channel in your organization.")
    if channel["source"] == "config":
        return await _page(ctx, 409, error="This channel comes from config.toml: change it there.")
    await ctx.run(store.delete_channel, ctx.engine, ctx.org_id, channel["id"])
    return RedirectResponse(HERE, 303)
