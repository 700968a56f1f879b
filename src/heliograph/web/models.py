"""The Models page and a model's page: "is my local model getting slower?".

Both read ``store.model_stats`` (the model rollup plus raw edges). The Models page lists every
model with where it runs (local, cloud or both) and the local-versus-cloud block; a row's
checkbox picks models for the comparison view. A model's page (``/models/<name>``, and
``?upstream=`` for one of its upstreams) has its trends, a latency histogram, who serves it,
its top users and recent errors; every figure drills through to the Requests page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape
from starlette.responses import Response

from heliograph.store import analytics, model_stats, search
from heliograph.store.filters import Leaf
from heliograph.store.selection import RequestFilter
from heliograph.web import names
from heliograph.web.charts import Series, chart
from heliograph.web.context import Ctx
from heliograph.web.dashboard import local_cloud, local_test
from heliograph.web.format import ms, number, path, pct, query_url, rate, tokens, usd
from heliograph.web.query import Window
from heliograph.web.request_pages import table_rows
from heliograph.web.sorting import TableSort

RECENT_ERRORS = 10
TOP_USERS = 10
MAX_UPSTREAM = 64
MODEL_COLUMNS = (
    *("requests", "prompt_tokens", "completion_tokens", "cost_usd", "p50_latency_ms"),
    *("p95_latency_ms", "p50_ttft_ms", "p50_output_tokens_per_s", "p10_output_tokens_per_s"),
    *("cold_starts", "error_rate", "last_ms", "key"),
)
UPSTREAM_COLUMNS = (
    *("requests", "cost_usd", "p50_latency_ms", "p95_latency_ms", "p50_ttft_ms"),
    *("p50_output_tokens_per_s", "p10_output_tokens_per_s", "cold_starts", "error_rate"),
    "upstream",
)
USER_COLUMNS = ("requests", "total_tokens", "cost_usd", "errors", "error_rate", "key")
# the recent errors table's sortable columns (request_head's keys) and the record fields
ERROR_COLUMNS = {
    "time": "created_at",
    "tokens": "total_tokens",
    "cost": "cost_usd",
    "latency": "latency_ms",
    "ttft": "ttft_ms",
}


def _load_models(ctx: Ctx, window: Window) -> dict[str, Any]:
    engine, org, since, until = ctx.engine, ctx.org_id, window.since_ms, window.until_ms
    split = model_stats.servings(engine, org, since, until, local_test(ctx.settings))
    keys = [m["key"] for m in split["models"] if m["key"] is not None][:6]
    usage = analytics.requests_by(engine, org, "model", keys, since, until, window.bucket_ms)
    return {"split": split, "usage": usage}


async def models_page(ctx: Ctx) -> Response:
    window = await ctx.window()
    data = await ctx.run(_load_models, ctx, window)
    split = data["split"]
    q = ctx.request.query_params
    sorter = TableSort(q, "/models", MODEL_COLUMNS, "-requests")
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
        links=_bucket_links(window),
        width=1000,
        height=200,
        tz=window.tz,
    )
    return ctx.render(
        "models.html",
        window=window,
        rows=sorter.apply(split["models"]),
        sorter=sorter,
        usage_chart=usage_chart if series else None,
        lc=local_cloud(q, "/models", split),
        drill=_drill(window),
    )


def _drill(window: Window, **fixed: str | None) -> Any:
    def drill(**params: str) -> str:
        return query_url("/requests", {**window.request_params(), **fixed, **params})

    return drill


def _bucket_links(window: Window, **params: str | None) -> list[str]:
    return [
        query_url("/requests", {**window.request_params(s, s + window.bucket_ms), **params})
        for s in window.starts
    ]


def _load_model(ctx: Ctx, window: Window, model: str, upstream: str | None) -> dict[str, Any]:
    engine, org, since, until = ctx.engine, ctx.org_id, window.since_ms, window.until_ms
    found = model_stats.trend(engine, org, since, until, window.bucket_ms, model, upstream)
    users = model_stats.top_users(engine, org, since, until, model, TOP_USERS)
    rows: list[dict[str, Any]] = []
    start = errors_since(found["points"], RECENT_ERRORS)
    if start is not None:
        errors = RequestFilter(model=model, since_ms=start, until_ms=until, errors_only=True)
        if upstream:
            errors.where = Leaf("upstream", "equals", upstream)
        rows = search.search_requests(engine, org, errors, RECENT_ERRORS).rows
    return {
        **found,
        "users": users,
        "people": names.lookup(engine, org, [u["key"] for u in users]),
        "error_rows": rows,
        "errors": {view["id"]: view for view in table_rows(ctx, rows)},
        "more_errors": found["totals"]["errors"] > len(rows),
    }


def errors_since(points: Sequence[dict[str, Any]], wanted: int) -> int | None:
    """Where the latest ``wanted`` errors start, from the per-bucket error counts (None: no
    errors), so finding them reads a few buckets' rows, not every call of a model that
    rarely fails."""
    seen = 0
    for point in reversed(points):
        seen += point["errors"]
        if seen >= wanted:
            return int(point["start_ms"])
    return int(points[0]["start_ms"]) if seen else None


def model_charts(window: Window, found: dict[str, Any], links: list[str]) -> list[Markup]:
    """A model's trends: latency, TTFT, speed, cold starts, errors, traffic and cost."""
    points = found["points"]

    def values(name: str) -> list[float | None]:
        return [p[name] for p in points]

    def draw(
        chart_id: str, title: str, series: list[Series], fmt: Any, kind: str = "line"
    ) -> Markup:
        return chart(
            chart_id,
            title,
            window.starts,
            window.bucket_ms,
            series,
            fmt=fmt,
            kind=kind,
            links=links,
            tz=window.tz,
        )

    charts = [
        draw(
            "chart-latency",
            "Latency p50 / p95",
            [
                Series("p50", values("p50_latency_ms"), "s1"),
                Series("p95", values("p95_latency_ms"), "s4"),
            ],
            ms,
        ),
        draw(
            "chart-ttft",
            "Time to first token p50 / p95",
            [
                Series("p50", values("p50_ttft_ms"), "s1"),
                Series("p95", values("p95_ttft_ms"), "s4"),
            ],
            ms,
        ),
        draw(
            "chart-tps",
            "Output tokens/s p50 / p10",
            [
                Series("p50", values("p50_output_tokens_per_s"), "s3"),
                Series("p10", values("p10_output_tokens_per_s"), "s5"),
            ],
            rate,
        ),
        draw(
            "chart-ptps",
            "Prompt tokens/s (average)",
            [Series("Prompt tok/s", values("avg_prompt_tokens_per_s"), "s2")],
            rate,
        ),
        draw(
            "chart-cold",
            "Cold starts",
            [Series("Cold starts", values("cold_starts"), "s6")],
            number,
            "bar",
        ),
        draw(
            "chart-load",
            "Cold start load time (average)",
            [Series("Load time", values("avg_cold_load_ms"), "s6")],
            ms,
        ),
        draw(
            "chart-error-rate",
            "Error rate",
            [
                Series(
                    "Error rate", [p["error_rate"] if p["requests"] else None for p in points], "s5"
                )
            ],
            pct,
        ),
        draw("chart-requests", "Requests", [Series("Requests", values("requests"))], number, "bar"),
        draw(
            "chart-tokens",
            "Tokens",
            [
                Series("Prompt", values("prompt_tokens"), "s1"),
                Series("Completion", values("completion_tokens"), "s3"),
            ],
            tokens,
            "stack",
        ),
        draw("chart-cost", "Cost (USD)", [Series("Cost", values("cost_usd"), "s2")], usd, "bar"),
    ]
    upstreams = found["upstreams"]
    if len(upstreams) > 1:  # served by two or more: overlay them
        for chart_id, title, field, fmt in (
            ("chart-upstream-latency", "p50 latency per upstream", "p50_latency_ms", ms),
            (
                "chart-upstream-tps",
                "p50 output tokens/s per upstream",
                "p50_output_tokens_per_s",
                rate,
            ),
        ):
            series = [
                Series(name, [p[field] for p in u["points"]], f"s{i % 6 + 1}")
                for i, (name, u) in enumerate(upstreams.items())
            ]
            charts.append(draw(chart_id, title, series, fmt))
    return charts


def latency_bars(buckets: Sequence[dict[str, Any]], links: Sequence[str]) -> Markup:
    """The latency histogram as an SVG bar chart: a bar per bucket, linking to its requests."""
    width, height, left, bottom, top = 480, 170, 40, 34, 10
    if not buckets:
        return Markup("")
    peak = max(b["count"] for b in buckets) or 1
    col = (width - left - 8) / len(buckets)
    plot = height - top - bottom
    out = [
        '<figcaption class="chart-title">Latency histogram</figcaption>',
        f'<svg class="chart histogram" id="chart-histogram" viewBox="0 0 {width} {height}" '
        'role="img" aria-labelledby="chart-histogram-t">'
        '<title id="chart-histogram-t">Requests per latency range</title>',
        f'<text class="ylabel" x="{left - 6}" y="{top + 8}" text-anchor="end">'
        f"{escape(number(peak))}</text>",
    ]
    for i, b in enumerate(buckets):
        h = b["count"] / peak * plot
        x = left + col * i
        label = _range_label(b)
        tip = f"{label}: {b['count']:,} requests ({pct(b['share'])})"
        bar = (
            f'<rect class="bar s1" x="{x + col * 0.1:.1f}" y="{top + plot - h:.1f}" '
            f'width="{col * 0.8:.1f}" height="{max(h, 0.5):.1f}"><title>{escape(tip)}</title></rect>'
        )
        out.append(f'<a href="{escape(links[i])}">{bar}</a>' if b["count"] else bar)
        if i % 2 == 0 or len(buckets) <= 8:
            out.append(
                f'<text class="xlabel" x="{x + col / 2:.1f}" y="{height - bottom + 14}" '
                f'text-anchor="middle">{escape(_short(b))}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 (every piece of text above is escaped)


def _range_label(bucket: dict[str, Any]) -> str:
    if bucket["high_ms"] is None:
        return f"over {ms(bucket['low_ms'])}"
    return f"{ms(bucket['low_ms'])} to {ms(bucket['high_ms'])}"


def _short(bucket: dict[str, Any]) -> str:
    return f">{ms(bucket['low_ms'])}" if bucket["high_ms"] is None else f"≤{ms(bucket['high_ms'])}"


def _histogram_links(window: Window, found: dict[str, Any], **fixed: str | None) -> list[str]:
    out = []
    for b in found["latency_histogram"]:
        bounds = {"min_latency": f"{b['low_ms']:g}"}
        if b["high_ms"] is not None:
            bounds["max_latency"] = f"{b['high_ms']:g}"
        out.append(query_url("/requests", {**window.request_params(), **fixed, **bounds}))
    return out


async def model_page(ctx: Ctx) -> Response:
    model = ctx.request.path_params["model"]
    q = ctx.request.query_params
    upstream = q.get("upstream", "").strip()[:MAX_UPSTREAM] or None
    window = await ctx.window()
    found = await ctx.run(_load_model, ctx, window, model, upstream)
    local = local_test(ctx.settings)
    served = [
        {
            "upstream": name,
            "providers": u["providers"],
            "local": any(local(name, p) for p in u["providers"]),
            **u["totals"],
        }
        for name, u in found["upstreams"].items()
    ]
    here = path("models", model)
    fixed = {"model": model, "upstream": upstream}
    up_sort = TableSort(q, here, UPSTREAM_COLUMNS, "-requests", param="up_sort")
    user_sort = TableSort(q, here, USER_COLUMNS, "-requests", param="users_sort")
    error_sort = TableSort(
        q,
        here,
        {key: _field(name) for key, name in ERROR_COLUMNS.items()},
        "-time",
        param="errors_sort",
    )
    views = found["errors"]
    return ctx.render(
        "model.html",
        window=window,
        model=model,
        upstream=upstream,
        here=here,
        totals=found["totals"],
        charts=model_charts(window, found, _bucket_links(window, **fixed)),
        histogram=latency_bars(
            found["latency_histogram"], _histogram_links(window, found, **fixed)
        ),
        served=up_sort.apply(served),
        up_sort=up_sort,
        users=user_sort.apply(found["users"]),
        user_sort=user_sort,
        people=found["people"],
        errors=[views[r["id"]] for r in error_sort.apply(found["error_rows"])],
        error_link=_sort_link(error_sort),
        more_errors=found["more_errors"],
        drill=_drill(window, **fixed),
        extra={"upstream": upstream} if upstream else {},
    )


def _field(name: str) -> Any:
    return lambda row: row.get(name)


def _sort_link(sorter: TableSort) -> Any:
    """``request_head``'s ``sort_link``: a header label linking to its sort, with an arrow."""

    def link(column: str, label: str) -> Markup:
        arrow = {"descending": " ▼", "ascending": " ▲"}.get(sorter.state(column) or "", "")
        return Markup('<a href="{}">{}{}</a>').format(sorter.link(column), label, arrow)

    return link
