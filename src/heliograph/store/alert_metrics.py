"""What alert rules measure: one window of one organization's traffic, read like the dashboard.

A rule's filter is the Requests page's URL parameters. When they are only exact values of
rollup dimensions (``ROLLUP_PARAMS``: model, provider, upstream, user, task), the window is
read by ``aggregate.collect``, the dashboard's own reader: whole hours from the hourly
rollups, the ragged edges (and any window shorter than an hour, e.g. 5 or 15 minutes) from
raw rows through the ``(org_id, created_at)`` index. Any other filter (a property, a status
range, a prompt, a ``filter`` tree) is compiled by ``filters.condition`` and read from raw rows
only, which the rule checks limit to ``RAW_WINDOW_MS`` so an evaluation never scans a long
window row by row. Both paths feed the same mergeable ``Stats``, so a figure here is the
figure the Dashboard and the Models page show for the same window.

The cache hit rate (answers from Heliograph's response cache) has no rollup column: it is
counted in SQL over raw rows of the window, bounded the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine, case, func, select

from heliograph.store import aggregate, filter_params, filters
from heliograph.store.analytics import resolve_where
from heliograph.store.schema import requests
from heliograph.store.stats import Stats

ROLLUP_PARAMS = frozenset({"model", "provider", "upstream", "user_id", "task"})
RAW_WINDOW_MS = 3_600_000  # longest window read from raw rows alone


def rollup_readable(params: Mapping[str, str]) -> bool:
    """Whether the filter is only exact values of rollup dimensions."""
    return set(params) <= ROLLUP_PARAMS


def window_stats(
    engine: Engine, org_id: str, params: Mapping[str, str], since_ms: int, until_ms: int
) -> Stats:
    """The merged ``Stats`` of the LLM calls in ``[since_ms, until_ms)`` matching ``params``."""
    if rollup_readable(params):
        where = resolve_where(engine, org_id, dict(params))
        with engine.connect() as conn:
            entries = aggregate.collect(conn, org_id, since_ms, until_ms, (), where)
        return entries[()].stats if () in entries else Stats()
    condition = filters.condition(org_id, filter_params.parse(params.items()))
    query = select(*aggregate.ROW_COLUMNS).where(
        condition,
        requests.c.created_at >= since_ms,
        requests.c.created_at < until_ms,
        requests.c.kind == "llm",
    )
    stats = Stats()
    with engine.connect() as conn:
        stats.add_rows(conn.execute(query))
    return stats


def cache_hits(
    engine: Engine, org_id: str, params: Mapping[str, str], since_ms: int, until_ms: int
) -> tuple[int, int]:
    """(answers from the response cache, LLM calls) in the window, counted in SQL."""
    condition = filters.condition(org_id, filter_params.parse(params.items()))
    query = select(
        func.count(), func.sum(case((requests.c.cache_hit.is_(True), 1), else_=0))
    ).where(
        condition,
        requests.c.created_at >= since_ms,
        requests.c.created_at < until_ms,
        requests.c.kind == "llm",
    )
    with engine.connect() as conn:
        total, hits = conn.execute(query).one()
    return int(hits or 0), int(total or 0)
