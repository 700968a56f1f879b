"""The Dashboard (totals, charts, top lists) and the Models page.

Both read only ``store.analytics`` (the same functions as ``/api/v1/analytics/*``), so they
move to hourly rollups with the query layer. Every number, bar and row links to the Requests
page filtered to what it counts.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response

from heliograph.config import UpstreamConfig
from heliograph.store import analytics, tasks
from heliograph.web import names
from heliograph.web.charts import Series, chart
from heliograph.web.context import Ctx
from heliograph.web.format import ms, number, path, query_url, tokens, usd
from heliograph.web.query import Window, parse_window

TOP = 8
LOCAL_PROVIDERS = frozenset(
    {"ollama", "vllm", "llamacpp", "llama.cpp", "lmstudio", "localai", "tgi", "sglang"}
)


def _links(window: Window, **extra: str) -> list[str]:
    return [
        query_url("/requests", {**window.request_params(s, s + window.bucket_ms), **extra})
        for s in window.starts
    ]


def dashboard_charts(window: Window, points: list[dict[str, Any]]) -> list[Any]:
    starts, bucket = window.starts, window.bucket_ms
    links = _links(window, kind="llm")

    def values(name: str) -> list[float | None]:
        return [p[name] for p in points]

    return [
        chart(
            "chart-requests",
            "Requests",
            starts,
            bucket,
            [Series("Requests", values("requests"))],
            fmt=number,
            links=links,
        ),
        chart(
            "chart-cost",
            "Cost (USD, priced requests)",
            starts,
            bucket,
            [Series("Cost", values("cost_usd"), "s2")],
            fmt=usd,
            links=links,
        ),
        chart(
            "chart-tokens",
            "Tokens",
            starts,
            bucket,
            [
                Series("Prompt", values("prompt_tokens"), "s1"),
                Series("Completion", values("completion_tokens"), "s3"),
            ],
            fmt=tokens,
            kind="stack",
            links=links,
        ),
        chart(
            "chart-latency",
            "Latency p50 / p95",
            starts,
            bucket,
            [
                Series("p50", values("p50_latency_ms"), "s1"),
                Series("p95", values("p95_latency_ms"), "s4"),
            ],
            fmt=ms,
            kind="line",
            links=links,
        ),
        chart(
            "chart-errors",
            "Errors",
            starts,
            bucket,
            [Series("Errors", values("errors"), "s5")],
            fmt=number,
            links=_links(window, kind="llm", errors="1"),
        ),
    ]


def _load_dashboard(ctx: Ctx, window: Window) -> dict[str, Any]:
    engine, org, since, until = ctx.engine, ctx.org_id, window.since_ms, window.until_ms
    users = analytics.breakdown(engine, org, "user_id", since, until, TOP)
    return {
        "totals": analytics.summary(engine, org, since, until),
        "points": analytics.timeseries(engine, org, since, until, window.bucket_ms),
        "models": analytics.breakdown(engine, org, "model", since, until, TOP),
        "providers": analytics.breakdown(engine, org, "provider", since, until, TOP),
        "users": users,
        "people": names.lookup(engine, org, [u["key"] for u in users]),
        "task_share": tasks.overview(engine, org, since, until),
    }


async def dashboard(ctx: Ctx) -> Response:
    window = parse_window(ctx.request.query_params)
    data = await ctx.run(_load_dashboard, ctx, window)
    return ctx.render(
        "dashboard.html",
        window=window,
        charts=dashboard_charts(window, data["points"]),
        drill=lambda **kw: query_url("/requests", {**window.request_params(), "kind": "llm", **kw}),
        **data,
    )


def is_local(provider: str, upstreams: dict[str, UpstreamConfig]) -> bool:
    """Local models run on this machine or network.

    An upstream's explicit ``local`` (``HELIOGRAPH_UPSTREAM_<NAME>_LOCAL``) decides; unset, it
    is guessed: known local servers, or a loopback or private address. (The demo's simulated
    cloud providers listen on 127.0.0.1 and say ``local=False``.)
    """
    config = upstreams.get(provider)
    if config is not None and config.local is not None:
        return config.local
    if provider in LOCAL_PROVIDERS:
        return True
    host = urlsplit(config.url).hostname if config and config.url else None
    if not host:
        return False
    if host == "localhost" or host.endswith((".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback


def _load_models(ctx: Ctx, window: Window) -> dict[str, Any]:
    engine, org, since, until = ctx.engine, ctx.org_id, window.since_ms, window.until_ms
    models = analytics.breakdown(engine, org, "model", since, until, 500)
    keys = [m["key"] for m in models if m["key"] is not None][:6]
    usage = analytics.requests_by(engine, org, "model", keys, since, until, window.bucket_ms)
    return {"models": models, "usage": usage}


async def models_page(ctx: Ctx) -> Response:
    window = parse_window(ctx.request.query_params, "30d")
    data = await ctx.run(_load_models, ctx, window)
    upstreams = ctx.settings.resolved_upstreams()
    rows = []
    for m in data["models"]:
        local = any(is_local(p, upstreams) for p in m["providers"])
        rows.append({**m, "local": local})
    rows.sort(key=lambda r: (r["local"], -r["requests"]))
    series = [
        Series(str(key), [float(v) for v in counts], f"s{i + 1}")
        for i, (key, counts) in enumerate(data["usage"].items())
    ]
    usage_chart = chart(
        "chart-models",
        "Requests per model",
        window.starts,
        window.bucket_ms,
        series,
        fmt=number,
        kind="stack",
        links=_links(window, kind="llm"),
        width=1000,
        height=200,
    )
    return ctx.render(
        "models.html",
        window=window,
        rows=rows,
        usage_chart=usage_chart if series else None,
        drill=lambda **kw: query_url("/requests", {**window.request_params(), **kw}),
        user_path=lambda u: path("users", u),
    )
