"""The Dashboard (totals, charts, top lists, local versus cloud), and what decides whether a
model runs locally.

It reads ``store.analytics`` (the same functions as ``/api/v1/analytics/*``) and
``store.model_stats``, so it reads hourly rollups. Every number, bar and row links to the
Requests page filtered to what it counts. The local-versus-cloud block is shared with the
Models page (``local_cloud``).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import QueryParams
from starlette.responses import Response

from heliograph.config import Settings, UpstreamConfig
from heliograph.store import analytics, model_stats, tasks
from heliograph.web import names
from heliograph.web.charts import Series, chart
from heliograph.web.context import Ctx
from heliograph.web.format import ms, number, query_url, tokens, usd
from heliograph.web.query import Window
from heliograph.web.sorting import TableSort

TOP = 8
TOP_COLUMNS = ("requests", "cost_usd", "p95_latency_ms", "avg_latency_ms", "key")
SIDE_COLUMNS = (
    *("requests", "models", "cost_usd", "p50_latency_ms", "p50_ttft_ms"),
    *("p50_output_tokens_per_s", "side"),
)
BOTH_FIELDS = ("requests", "cost_usd", "p50_latency_ms", "p50_ttft_ms", "p50_output_tokens_per_s")
BOTH_COLUMNS = (
    "requests",
    *(f"{side}_{f}" for f in BOTH_FIELDS for side in model_stats.SIDES),
    "key",
)
LOCAL_PROVIDERS = frozenset(
    {"ollama", "vllm", "llamacpp", "llama.cpp", "lmstudio", "localai", "tgi", "sglang"}
)


def _links(window: Window, **extra: str) -> list[str]:
    return [
        query_url("/requests", {**window.request_params(s, s + window.bucket_ms), **extra})
        for s in window.starts
    ]


def dashboard_charts(window: Window, points: list[dict[str, Any]]) -> list[Any]:
    starts, bucket, tz = window.starts, window.bucket_ms, window.tz
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
            tz=tz,
        ),
        chart(
            "chart-cost",
            "Cost (USD, priced requests)",
            starts,
            bucket,
            [Series("Cost", values("cost_usd"), "s2")],
            fmt=usd,
            links=links,
            tz=tz,
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
            tz=tz,
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
            tz=tz,
        ),
        chart(
            "chart-errors",
            "Errors",
            starts,
            bucket,
            [Series("Errors", values("errors"), "s5")],
            fmt=number,
            links=_links(window, kind="llm", errors="1"),
            tz=tz,
        ),
    ]


def _load_dashboard(ctx: Ctx, window: Window) -> dict[str, Any]:
    engine, org, since, until = ctx.engine, ctx.org_id, window.since_ms, window.until_ms
    users = analytics.breakdown(engine, org, "user_id", since, until, TOP)
    split = model_stats.servings(engine, org, since, until, local_test(ctx.settings))
    return {
        "totals": analytics.summary(engine, org, since, until),
        "points": analytics.timeseries(engine, org, since, until, window.bucket_ms),
        "models": split["models"][:TOP],  # one read of the model rollup for all three
        "providers": split["providers"][:TOP],
        "users": users,
        "people": names.lookup(engine, org, [u["key"] for u in users]),
        "task_share": tasks.overview(engine, org, since, until),
        "split": split,
    }


async def dashboard(ctx: Ctx) -> Response:
    window = await ctx.window()
    data = await ctx.run(_load_dashboard, ctx, window)
    q = ctx.request.query_params
    tops = {}
    for name in ("models", "providers", "users"):
        sorter = TableSort(q, "/", TOP_COLUMNS, "-requests", param=f"{name}_sort")
        tops[name] = (sorter.apply(data.pop(name)), sorter)
    return ctx.render(
        "dashboard.html",
        window=window,
        charts=dashboard_charts(window, data["points"]),
        drill=lambda **kw: query_url("/requests", {**window.request_params(), "kind": "llm", **kw}),
        tops=tops,
        lc=local_cloud(q, "/", data.pop("split")),
        **data,
    )


def local_cloud(q: QueryParams, page: str, split: dict[str, Any]) -> dict[str, Any]:
    """The local-versus-cloud block's rows (``model_stats.servings``), each table sorted by
    its own URL parameter: the two subtotals, and the models served both ways."""
    sides = [{"side": side, **split["sides"][side]} for side in model_stats.SIDES]
    both = [
        {
            "key": m["key"],
            "requests": m["requests"],
            **{f"{side}_{f}": m[side][f] for f in BOTH_FIELDS for side in model_stats.SIDES},
        }
        for m in split["both"]
    ]
    side_sort = TableSort(q, page, SIDE_COLUMNS, "-side", param="lc_sort")  # local first
    both_sort = TableSort(q, page, BOTH_COLUMNS, "-requests", param="both_sort")
    return {
        "sides": side_sort.apply(sides),
        "side_sort": side_sort,
        "both": both_sort.apply(both),
        "both_sort": both_sort,
    }


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


def served_locally(upstream: str, provider: str, upstreams: dict[str, UpstreamConfig]) -> bool:
    """Whether a record's upstream runs locally: ``is_local`` of the upstream, or of the
    provider once that upstream is no longer configured (the request page's rule too)."""
    return is_local(upstream if upstream in upstreams else provider, upstreams)


def local_test(settings: Settings) -> model_stats.Local:
    """``served_locally`` for this server's upstreams, as ``store.model_stats`` takes it."""
    upstreams = settings.resolved_upstreams()
    return lambda upstream, provider: served_locally(upstream, provider, upstreams)
