"""The Scores page: one named score over time, per model or per prompt version (``/scores``).

Scores come from online evaluation rules, the score API and the review queue. The page picks
a score name (the names stored in the window), groups by model or by prompt version, and
draws the mean per bucket of the page's window in its timezone, one small line chart per
model (or version), the busiest first, with the window's mean and count in a table. Each
line is linked to the Requests page filtered to the model (or prompt version) and window.
Names and keys are user data: they reach the page only through the escaping chart helper
and autoescaped templates.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from heliograph.store import score_charts
from heliograph.web.charts import Series, chart
from heliograph.web.context import Ctx
from heliograph.web.format import query_url
from heliograph.web.query import Window


def fixed2(value: float) -> str:
    return f"{value:.2f}"


def _load(ctx: Ctx, window: Window, name: str | None, by: str) -> dict[str, Any]:
    names = score_charts.score_names(ctx.engine, ctx.org_id, window.since_ms)
    chosen = name if name in names else (names[0] if names else None)
    lines = []
    if chosen is not None:
        lines = score_charts.score_lines(
            ctx.engine,
            ctx.org_id,
            chosen,
            window.since_ms,
            window.until_ms,
            window.bucket_ms,
            by,
        )
    return {"names": names, "chosen": chosen, "lines": lines}


def _requests_link(window: Window, by: str, line: score_charts.Line) -> str:
    params = window.request_params()
    if by == "prompt" and line.prompt is not None:
        params |= {"prompt_name": line.prompt[0], "prompt_version": str(line.prompt[1])}
    else:
        params |= {"model": line.key}
    return query_url("/requests", params)


async def scores_page(ctx: Ctx) -> Response:
    window = await ctx.window()
    q = ctx.request.query_params
    by = "prompt" if q.get("by") == "prompt" else "model"
    data = await ctx.run(_load, ctx, window, q.get("name"), by)
    charts = []
    for i, line in enumerate(data["lines"]):
        series = [Series(f"mean {data['chosen']}", line.means, f"s{i % 6 + 1}")]
        svg = chart(
            f"chart-score-{i}",
            f"{data['chosen']}: {line.key}",
            window.starts,
            window.bucket_ms,
            series,
            fmt=fixed2,
            kind="line",
            tz=window.tz,
        )
        charts.append({"line": line, "svg": svg, "link": _requests_link(window, by, line)})
    return ctx.render(
        "scores.html",
        window=window,
        by=by,
        charts=charts,
        extra={"name": data["chosen"] or "", "by": by},
        **data,
    )
