"""The request page: one record as a conversation, its timing, cost and context, the
neighbouring records and the replays made of it, and the replay form.

Opened from the Requests table, its URL carries the table's filters, so the previous/next
links walk the same filtered list (by time, then id: the table's default order) and "back"
returns to it. The replay form is rendered here both for a fresh page and when a replay was
refused (bad JSON, an upstream that cannot take the request): then it holds the user's input.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from starlette.responses import Response

from heliograph.retention.policy import effective
from heliograph.store import analytics, filter_params, search
from heliograph.store import retention as retention_store
from heliograph.store.requests import get_request
from heliograph.store.selection import RequestFilter
from heliograph.web import chat, columns, names
from heliograph.web.context import Ctx
from heliograph.web.dashboard import served_locally
from heliograph.web.format import DASH, path, query_url, zone_label
from heliograph.web.query import parse_request_query
from heliograph.web.replay_form import ReplayForm, initial_form, replay_problem, targets

RAW_DISPLAY_CHARS = 400_000
SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "cookie", "proxy-authorization")
MAX_REPLAYS_SHOWN = 50
MODEL_DAYS_MS = 30 * 86_400_000  # how far back the replay form looks for models to suggest


def tok_s(value: float | None) -> str:
    """Throughput with its unit, as every page writes it: 41.2 tok/s."""
    return DASH if value is None else f"{value:.1f} tok/s"


def where(row: dict[str, Any], upstreams: dict[str, Any]) -> str:
    """Local or cloud, by the record's upstream (by its provider once the upstream is gone)."""
    upstream = str(row.get("upstream") or "")
    provider = str(row.get("provider") or upstream)
    return "local" if served_locally(upstream, provider, upstreams) else "cloud"


def _raw(value: Any) -> str:
    text = chat.pretty(value) if value is not None else ""
    if len(text) > RAW_DISPLAY_CHARS:
        text = text[:RAW_DISPLAY_CHARS] + f"\n… ({len(text) - RAW_DISPLAY_CHARS:,} more characters)"
    return text


def _headers(headers: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name, value in sorted(headers.items()):
        shown = "[REDACTED]" if name.lower() in SECRET_HEADERS else str(value)
        out.append((name, shown))
    return out


def timing(row: dict[str, Any]) -> dict[str, Any]:
    """Latency split into model load, time to first token and generation (streams), or total.

    The load part is called a cold start exactly when the record is one (``cold_start``, as
    the Timing table's badge and the rollups count it); a warm model's few milliseconds of
    load are "Model load (warm)".
    """
    total, ttft, load = row.get("latency_ms"), row.get("ttft_ms"), row.get("load_ms")
    parts = []
    if load:
        if row.get("cold_start"):
            parts.append(("cold", "Cold start (model load)", load))
        else:
            parts.append(("load", "Model load (warm)", load))
    if ttft is not None and total is not None:
        parts.append(("ttft", "Time to first token", max(0.0, ttft - (load or 0))))
        parts.append(("gen", "Generation", max(0.0, total - ttft)))
    elif total is not None:
        parts.append(("total", "Total", max(0.0, total - (load or 0))))
    width = sum(p[2] for p in parts) or 1.0
    bars, x = [], 0.0
    for css, label, value in parts:
        share = value / width * 100
        bars.append({"css": css, "label": label, "value": value, "x": x, "w": share})
        x += share
    return {"total": total, "ttft": ttft, "parts": bars}


def _replays(ctx: Ctx, rid: str) -> list[dict[str, Any]]:
    """The replays of a record (newest first): records whose ``replay_of`` property is it."""
    f = RequestFilter(where=filter_params.parse_one("property.replay_of", rid))
    page = search.search_requests(ctx.engine, ctx.org_id, f, MAX_REPLAYS_SHOWN)
    return page.rows


def _around(ctx: Ctx, rid: str, f: RequestFilter) -> dict[str, Any]:
    older, newer = search.neighbours(ctx.engine, ctx.org_id, f, rid)
    return {"older": older, "newer": newer, "replays": _replays(ctx, rid)}


def model_choices(ctx: Ctx) -> dict[str, list[str]]:
    """Models each configured upstream served lately (from the rollups), most used first, to
    suggest in the replay form's model field."""
    now = int(time.time() * 1000)
    models = analytics.breakdown(ctx.engine, ctx.org_id, "model", now - MODEL_DAYS_MS, now, 300)
    out: dict[str, list[str]] = {}
    for name, config in ctx.settings.resolved_upstreams().items():
        provider = config.provider or name
        out[name] = [m["key"] for m in models if m["key"] and provider in m["providers"]]
    return out


def bodies_note(ctx: Ctx, row: dict[str, Any]) -> str:
    """Why a record has no body, when it has none: retention deleted it, or none was kept."""
    if row.get("request_body") is not None or row.get("response_body") is not None:
        return ""
    if row.get("request_headers"):
        return ""  # the bodies row is there: the request simply had no body
    override = retention_store.get_override(ctx.engine, ctx.org_id)
    days = effective(ctx.settings, override).bodies_days
    created = dt.datetime.fromisoformat(str(row["created_at"]).replace("Z", "+00:00"))
    age_days = (dt.datetime.now(dt.UTC) - created).total_seconds() / 86400
    if days is not None and age_days > days:
        return f"Body deleted by retention: this organization keeps bodies {days} days."
    return "No body is stored for this record."


async def render_detail(
    ctx: Ctx, row: dict[str, Any], form: ReplayForm | None = None, status: int = 200
) -> Response:
    """The request page for ``row``; ``form`` is the replay form as the user left it."""
    rid = str(row["id"])
    rq = parse_request_query(ctx.request.query_params)
    zone = zone_label(ctx.tz)
    cols = columns.param(columns.chosen(ctx.request.query_params))
    state = {"cols": cols, "tz": "" if zone == "UTC" else zone}
    keep = rq.pairs(cursor=None, **state)  # the list this page was opened from
    around = await ctx.run(_around, ctx, rid, rq.filter)
    people = await ctx.run(names.lookup, ctx.engine, ctx.org_id, [row.get("user_id")])
    models = await ctx.run(model_choices, ctx) if ctx.user.is_admin else {}
    upstreams = ctx.settings.resolved_upstreams()

    def link(other: str | None) -> str:
        return query_url(path("requests", other), keep) if other else ""

    return ctx.render(
        "request.html",
        status,
        r=row,
        people=people,
        status_class=_status_class(row),
        where=where(row, upstreams),
        tok_s=tok_s,
        back_href=query_url("/requests", keep),
        older_href=link(around["older"]),
        newer_href=link(around["newer"]),
        filtered=rq.active,
        replays=[
            {**r, "href": path("requests", r["id"]), "where": where(r, upstreams)}
            for r in around["replays"]
        ],
        replay_of=row.get("properties", {}).get("replay_of"),
        bodies_note=await ctx.run(bodies_note, ctx, row),
        prompt=chat.conversation(row.get("request_body")),
        tools=chat.tool_names(row.get("request_body")),
        answer=chat.output(row.get("response_body")),
        timing=timing(row),
        request_headers=_headers(row.get("request_headers") or {}),
        response_headers=_headers(row.get("response_headers") or {}),
        raw_request=_raw(row.get("request_body")),
        raw_response=_raw(row.get("response_body")),
        replay_problem=replay_problem(row),
        targets=targets(row, upstreams) if ctx.user.is_admin else [],
        form=(form or initial_form(row, upstreams)) if ctx.user.is_admin else None,
        models=models,
    )


def _status_class(row: dict[str, Any]) -> str:
    state = row.get("state")
    return "ok" if state == "ok" else ("warn" if state == "cancelled" else "err")


async def request_detail(ctx: Ctx) -> Response:
    rid = ctx.request.path_params["request_id"]
    row = await ctx.run(get_request, ctx.engine, ctx.org_id, rid)
    if row is None:
        return ctx.not_found("No such request in your organization.")
    return await render_detail(ctx, row)
