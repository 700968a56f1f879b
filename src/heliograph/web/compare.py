"""The comparison view: two to four models over the same window and traffic filter.

``/compare?model=a&model=b`` (the Models page's checkboxes submit this) overlays the models'
trends, one line per model, and puts their figures side by side in one sortable table. The
traffic filter (upstream, provider, user, Open WebUI task) applies to every model alike. All
of it is one read of ``store.model_stats.compare``.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from starlette.responses import Response

from heliograph.store import model_stats
from heliograph.web.charts import Series, chart
from heliograph.web.context import Ctx
from heliograph.web.format import ms, number, pct, query_url, rate, usd
from heliograph.web.query import Window
from heliograph.web.sorting import TableSort

FILTERS = ("upstream", "provider", "user_id", "task")
MAX_VALUE = 255
PICKERS = model_stats.MAX_COMPARED
COLUMNS = (
    *("requests", "cost_usd", "total_tokens", "p50_latency_ms", "p95_latency_ms"),
    *("p50_ttft_ms", "p95_ttft_ms", "p50_output_tokens_per_s", "p10_output_tokens_per_s"),
    *("avg_prompt_tokens_per_s", "cold_starts", "error_rate", "key"),
)
# (chart id, title, field, formatter) of the overlaid trends
TRENDS = (
    ("chart-cmp-latency", "p50 latency", "p50_latency_ms", ms),
    ("chart-cmp-latency95", "p95 latency", "p95_latency_ms", ms),
    ("chart-cmp-ttft", "p50 time to first token", "p50_ttft_ms", ms),
    ("chart-cmp-tps", "p50 output tokens/s", "p50_output_tokens_per_s", rate),
    ("chart-cmp-tps10", "p10 output tokens/s", "p10_output_tokens_per_s", rate),
    ("chart-cmp-errors", "Error rate", "error_rate", pct),
    ("chart-cmp-requests", "Requests", "requests", number),
    ("chart-cmp-cost", "Cost (USD)", "cost_usd", usd),
)


def _choices(ctx: Ctx, window: Window) -> list[str]:
    """The models with traffic in the window, for the pickers."""
    return model_stats.model_names(ctx.engine, ctx.org_id, window.since_ms, window.until_ms)


def _load(
    ctx: Ctx, window: Window, models: list[str], where: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    found = model_stats.compare(
        ctx.engine,
        ctx.org_id,
        window.since_ms,
        window.until_ms,
        window.bucket_ms,
        models,
        where,
    )
    return found, _choices(ctx, window)


def compare_charts(window: Window, found: dict[str, Any]) -> list[Markup]:
    """One chart per measure, one line per model (bars would hide each other)."""
    out = []
    for chart_id, title, field, fmt in TRENDS:
        series = [
            Series(
                model,
                [p[field] if p["requests"] else None for p in data["points"]],
                f"s{i + 1}",
            )
            for i, (model, data) in enumerate(found.items())
        ]
        out.append(
            chart(
                chart_id,
                title,
                window.starts,
                window.bucket_ms,
                series,
                fmt=fmt,
                kind="line",
                tz=window.tz,
            )
        )
    return out


async def compare_page(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    window = await ctx.window()
    models = list(dict.fromkeys(v.strip() for v in q.getlist("model") if v.strip()))
    problem = ""
    if len(models) > PICKERS:
        problem = f"At most {PICKERS} models side by side; showing the first {PICKERS}."
        models = models[:PICKERS]
    where = {k: q[k].strip()[:MAX_VALUE] for k in FILTERS if q.get(k, "").strip()}
    found, choices = await ctx.run(_load, ctx, window, models, where)
    sorter = TableSort(q, "/compare", COLUMNS, "-requests")
    rows = [{"key": m, **data["totals"]} for m, data in found.items()]

    def drill(model: str, **params: str) -> str:
        return query_url(
            "/requests", {**window.request_params(), **where, "model": model, **params}
        )

    return ctx.render(
        "compare.html",
        window=window,
        models=models,
        pickers=[*models, *[""] * (PICKERS - len(models))][:PICKERS],
        choices=sorted(set(choices) | set(models), key=str.casefold),
        where=where,
        filters=FILTERS,
        rows=sorter.apply(rows),
        sorter=sorter,
        colour={m: f"s{i + 1}" for i, m in enumerate(found)},
        charts=compare_charts(window, found) if len(found) >= 2 else [],
        problem=problem,
        drill=drill,
        ranges=("1h", "24h", "7d", "30d"),
        upstreams=sorted(ctx.settings.resolved_upstreams()),
        no_histograms=bool({"user_id", "task"} & set(where)),
    )
