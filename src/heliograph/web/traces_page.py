"""The Traces list and one trace as a waterfall: spans an application sent over OTLP (agent,
tool, retrieval) with the LLM calls inside them, gateway-recorded and ingested alike, each
opening its request page.

Both pages read ``store.trace_list`` and ``store.traces``, as ``GET /api/v1/traces[/<id>]``
does. The waterfall is server-rendered: a table row per span, indented by depth (CSS classes,
since the page's Content-Security-Policy allows no inline style), with an SVG bar placed by
its start and length on the trace's timeline; a span's attributes open in a ``<details>``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import RedirectResponse, Response

from heliograph.store import trace_list, traces
from heliograph.web.context import Ctx
from heliograph.web.format import path, query_url

PAGE_SIZE = 100
MAX_INDENT = 15  # deeper spans share the last indent class (their depth is still written)
MIN_BAR = 0.4  # percent: a span of zero length is still a visible tick


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def waterfall(tree: traces.TraceTree) -> list[dict[str, Any]]:
    """The tree's nodes with what a row needs: bar offset and width (percent of the trace),
    indent class, status class, and attributes as text."""
    whole = max(tree.duration_ms, 1e-6)
    rows = []
    for n in tree.nodes:
        offset = min(n["offset_ms"] / whole * 100, 100 - MIN_BAR)
        width = max(MIN_BAR, min(n["duration_ms"] / whole * 100, 100 - offset))
        status = {"error": "err", "ok": "ok"}.get(n["status"], "unset")
        rows.append(
            {
                **n,
                "indent": min(n["depth"], MAX_INDENT),
                "bar_x": offset,
                "bar_w": width,
                "status_class": status,
                "attribute_rows": [(k, _text(v)) for k, v in sorted(n["attributes"].items())],
            }
        )
    return rows


async def traces_page(ctx: Ctx) -> Response:
    wanted = ctx.request.query_params.get("trace_id", "").strip().lower()
    if wanted and traces.valid_trace_id(wanted):  # a trace id pasted from logs: open it
        return RedirectResponse(query_url(path("traces", wanted), ctx.keep()), 303)
    problem = "A trace id is 32 hex digits (not all zero)." if wanted else ""
    window = await ctx.window()
    rows = await ctx.run(
        trace_list.recent_traces,
        ctx.engine,
        ctx.org_id,
        PAGE_SIZE,
        window.since_ms,
        window.until_ms,
    )
    return ctx.render("traces.html", window=window, rows=rows, page_size=PAGE_SIZE, problem=problem)


async def trace_page(ctx: Ctx) -> Response:
    trace_id = ctx.request.path_params["trace_id"]
    if not traces.valid_trace_id(trace_id):
        return ctx.not_found("A trace id is 32 lower-case hex digits; this is not one.")
    tree = await ctx.run(traces.trace_tree, ctx.engine, ctx.org_id, trace_id)
    if tree is None:
        return ctx.not_found("No such trace in your organization.")
    return ctx.render(
        "trace.html",
        tree=tree,
        rows=waterfall(tree),
        start_ms=tree.start_ns // 1_000_000,
        max_nodes=traces.MAX_NODES,
    )
